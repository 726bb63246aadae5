"""The embedded profile's MQTT 3.1.1 broker (amqtt), started when no broker answers at ``mqtt_url``.

``mqtt_embedded`` decides: ``auto`` starts it only when nothing answers at ``mqtt_url``'s host:port
and that host is a loopback address; ``on`` always starts it; ``off`` never. The server profile
never starts it (production uses Mosquitto or EMQX). With ``mqtt_username``/``mqtt_password`` set,
clients must log in; otherwise anonymous clients are accepted. The password is never logged: the
broker only holds its SHA-256 digest.

Platform-only topics (commands ``spBv1.0/<group>/NCMD/...``, ``.../DCMD/...``, host state
``spBv1.0/STATE/...``, and delivery confirmations ``gongyun/confirm/<group>/<node>``, which make a
gateway drop what it buffered) may be published, and used as a will, only by the platform identity:
the configured ``mqtt_username``, or the anonymous clients when no login is configured (then the
broker listens on loopback only, see :class:`gongyun.config.Settings`, and every local client counts
as the platform). With one shared login every client that has it *is* the platform: this broker is
for a single machine; production uses Mosquitto or EMQX with per-gateway ACLs (docs/operations.md).
The gateway still checks each command itself (tenant, role ceiling, signature:
:mod:`gongyun.edge.commands`).

With an ``mqtts://`` ``mqtt_url`` the broker instead listens with TLS, requires a client
certificate of the platform's CA and applies the per-device ACL of the generated Mosquitto
configuration (:mod:`gongyun.edge.broker_tls`): each gateway is then its own identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from pydantic import SecretStr

from gongyun.config import MqttEmbedded, Profile, Settings
from gongyun.edge.broker_tls import BrokerTls, embedded_tls
from gongyun.errors import ConfigError

log = logging.getLogger(__name__)
_ANONYMOUS = "amqtt.plugins.authentication.AnonymousAuthPlugin"
ANONYMOUS_USER = "anonymous"  # the name a client without a login has in ``command_publishers``


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class PasswordAuth(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt auth plugin: one username and password (compared by digest, in constant time)."""

    @dataclass
    class Config:
        """The accepted username and the SHA-256 hex digest of its password."""

        username: str = ""
        password_sha256: str = ""

    async def authenticate(self, *, session: Session) -> bool | None:
        """Accept the configured username with the right password; refuse anyone else."""
        cfg = self.config
        assert isinstance(cfg, PasswordAuth.Config)
        user_ok = hmac.compare_digest((session.username or "").encode(), cfg.username.encode())
        pw_ok = hmac.compare_digest(_digest(session.password or ""), cfg.password_sha256)
        if not (user_ok and pw_ok):
            log.warning("embedded MQTT broker: refused login of user %r", session.username)
        return user_ok and pw_ok


CONFIRM_ROOT = "gongyun/confirm"  # the uplink's delivery confirmations (``gongyun.edge.uplink``)


def is_command_topic(topic: str) -> bool:
    """Whether ``topic`` is platform-only: Sparkplug commands, host state or delivery confirmations."""
    parts = topic.split("/")
    if parts[0] == "STATE":  # Sparkplug 2.x host state
        return True
    if parts[:2] == CONFIRM_ROOT.split("/"):
        return True
    if parts[0] != "spBv1.0" or len(parts) < 2:
        return False
    return parts[1] == "STATE" or (len(parts) >= 3 and parts[2] in ("NCMD", "DCMD"))


def _may_command(session: Session | None, publishers: list[str]) -> bool:
    username = session.username if session is not None and session.username else ANONYMOUS_USER
    return username in publishers


class CommandTopicGuard(BaseTopicPlugin):  # type: ignore[misc]
    """amqtt topic-check plugin: only ``command_publishers`` may publish to command topics."""

    @dataclass
    class Config:
        """User names allowed to publish commands (``anonymous`` for clients without a login)."""

        command_publishers: list[str] = field(default_factory=list)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        """Refuse a publish to a command topic by anyone else; allow everything else."""
        if action is not Action.PUBLISH or topic is None or not is_command_topic(topic):
            return True
        cfg = self.config
        assert isinstance(cfg, CommandTopicGuard.Config)
        if _may_command(session, cfg.command_publishers):
            return True
        log.warning(
            "embedded MQTT broker: refused %r publishing to %s", session.username if session else None, topic
        )
        return False


class CommandWillGuard(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt auth plugin: refuse a CONNECT whose will targets a command topic (wills skip topic checks)."""

    @dataclass
    class Config:
        """User names allowed to publish commands (``anonymous`` for clients without a login)."""

        command_publishers: list[str] = field(default_factory=list)

    async def authenticate(self, *, session: Session) -> bool | None:
        """False for a forbidden will; None (no opinion) otherwise."""
        cfg = self.config
        assert isinstance(cfg, CommandWillGuard.Config)
        topic = session.will_topic if session.will_flag else None
        if topic and is_command_topic(topic) and not _may_command(session, cfg.command_publishers):
            log.warning("embedded MQTT broker: refused %r with a will on %s", session.username, topic)
            return False
        return None


def mqtt_address(url: str) -> tuple[str, int]:
    """Host and port of an ``mqtt://`` or ``mqtts://host:port`` URL (defaults 127.0.0.1, 1883 or 8883)."""
    try:
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise ConfigError(f"invalid mqtt_url {url!r}: {exc}") from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _DropEmptyConnections(logging.Filter):
    """Drop amqtt's error for a TCP connection that closes before CONNECT (a port probe)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No data to decode MQTT packet fixed header" not in record.getMessage()


def _quiet_amqtt() -> None:
    for name in ("amqtt", "transitions"):  # both log every connection or state change at INFO
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    broker_log = logging.getLogger("amqtt.broker")
    if not any(isinstance(f, _DropEmptyConnections) for f in broker_log.filters):
        broker_log.addFilter(_DropEmptyConnections())


class EmbeddedBroker:
    """An amqtt broker on one TCP listener; :meth:`start` then :meth:`stop`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: SecretStr | None = None,
        command_publishers: list[str] | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        """``command_publishers``: who may publish commands; default the platform identity alone.

        With ``tls`` the listener speaks TLS and requires client certificates of the CA, whose
        identity the per-device ACL restricts (:mod:`gongyun.edge.broker_tls`); no login then.
        """
        if (username is None) != (password is None):
            raise ConfigError("the embedded MQTT broker needs both a username and a password, or neither")
        if tls is not None and username is not None:
            raise ConfigError("the embedded MQTT broker with client certificates takes no username")
        self.host, self.port, self.username, self.tls = host, port, username, tls
        self._password_sha256 = _digest(password.get_secret_value()) if password is not None else None
        self._broker: Broker | None = None
        default = [username or ANONYMOUS_USER]
        self.command_publishers = default if command_publishers is None else command_publishers

    @property
    def address(self) -> tuple[str, int]:
        """Host and port the broker listens on."""
        return self.host, self.port

    def _config(self) -> dict[str, Any]:
        bind_host = f"[{self.host}]" if ":" in self.host else self.host
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{bind_host}:{self.port}"}
        if self.tls is not None:
            tls = self.tls
            listener |= {
                "ssl": True,
                "cafile": tls.ca_file,
                "certfile": tls.cert_file,
                "keyfile": tls.key_file,
            }
            crl = str(tls.crl_file) if tls.crl_file else ""
            return {
                "listeners": {"default": listener},
                "plugins": {
                    "gongyun.edge.broker_tls.CertificateAuth": {"crl_file": crl},
                    "gongyun.edge.broker_tls.CertificateAcl": {},
                },
            }
        plugins: dict[str, Any]
        if self.username is not None:
            plugins = {
                f"{__name__}.PasswordAuth": {
                    "username": self.username,
                    "password_sha256": self._password_sha256,
                }
            }
        else:
            plugins = {_ANONYMOUS: {"allow_anonymous": True}}
        guard = {"command_publishers": list(self.command_publishers)}
        plugins[f"{__name__}.CommandWillGuard"] = guard
        plugins[f"{__name__}.CommandTopicGuard"] = guard
        return {"listeners": {"default": listener}, "plugins": plugins}

    async def start(self) -> None:
        """Bind the listener and start serving; ``ConfigError`` when the address is taken."""
        if self._broker is not None:
            return
        _quiet_amqtt()
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            with socket.socket(family) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.host, self.port))
        except OSError as exc:
            raise ConfigError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        broker = Broker(self._config())
        try:
            await broker.start()
        except Exception as exc:
            raise ConfigError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {exc}"
            ) from exc
        self._broker = broker
        log.info(
            "embedded MQTT broker listening on %s:%d (%s)",
            self.host,
            self.port,
            "client certificates required"
            if self.tls
            else "login required"
            if self.username
            else "anonymous",
        )

    async def stop(self) -> None:
        """Disconnect every client and close the listener."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("embedded MQTT broker on %s:%d stopped", self.host, self.port)


async def start_embedded_broker(settings: Settings) -> EmbeddedBroker | None:
    """Start the embedded broker if the settings call for it (see the module docstring)."""
    mode = settings.mqtt_embedded
    if settings.profile is Profile.server or mode is MqttEmbedded.off:
        return None
    host, port = mqtt_address(settings.mqtt_url)
    if mode is MqttEmbedded.auto:
        if not is_loopback(host):
            return None
        if await asyncio.to_thread(broker_answers, host, port):
            log.info("using the MQTT broker at %s:%d", host, port)
            return None
    tls = embedded_tls(settings, host) if settings.mqtt_url.startswith("mqtts://") else None
    broker = EmbeddedBroker(
        host, port, username=settings.mqtt_username, password=settings.mqtt_password, tls=tls
    )
    try:
        await broker.start()
    except ConfigError as exc:
        if mode is MqttEmbedded.on:
            raise
        log.warning("%s; MQTT is left to whatever listens there", exc)  # lost a race for the port
        return None
    return broker
