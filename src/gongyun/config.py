"""Settings: the only place that reads environment variables and ``gongyun.toml``."""

from __future__ import annotations

import json
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gongyun.errors import ConfigError


class Profile(StrEnum):
    """Deployment profile: embedded (no services) or server (PostgreSQL, NATS, Redis)."""

    embedded = "embedded"
    server = "server"


class MqttEmbedded(StrEnum):
    """Whether the embedded profile starts its own MQTT broker at ``mqtt_url``."""

    auto = "auto"  # only when nothing answers there and the host is loopback
    on = "on"
    off = "off"


def _loopback_url(url: str) -> bool:
    """Whether ``mqtt://host:port`` names a loopback host (an unparsable URL does not)."""
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or "127.0.0.1"
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class SparkplugReceiver(StrEnum):
    """Whether this process receives the gateways' Sparkplug B uplinks (``sparkplug_groups``)."""

    auto = "auto"  # in the embedded profile only: server processes would each receive every group
    on = "on"
    off = "off"


_CONFIG_OVERRIDE: list[Path] = []


def use_config_file(path: Path) -> None:
    """Read settings from ``path`` (the CLI's ``--config``) instead of the default file."""
    _CONFIG_OVERRIDE[:] = [path]
    get_settings.cache_clear()


def _config_file() -> Path | None:
    explicit = _CONFIG_OVERRIDE[0] if _CONFIG_OVERRIDE else os.environ.get("GONGYUN_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        return path
    default = Path("gongyun.toml")
    return default if default.exists() else None


class Settings(BaseSettings):
    """Every setting Gongyun reads, from ``GONGYUN_*`` variables over ``gongyun.toml``."""

    model_config = SettingsConfigDict(env_prefix="GONGYUN_", extra="forbid", validate_default=True)

    profile: Profile = Profile.embedded
    data_dir: Path = Path("var")
    host: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    port: int = Field(default=8000, ge=0, le=65535)

    database_url: str | None = None
    bus_url: str | None = None
    # Namespaces every NATS stream, consumer and subject: deployments sharing a server need their own.
    deployment_id: str = Field(default="gongyun", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    redis_url: str | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_embedded: MqttEmbedded = MqttEmbedded.auto
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # Mutual TLS (an ``mqtts://`` mqtt_url): the CA bundle the broker's certificate chains to and the
    # platform's client certificate (CN gongyun-platform). Unset with the embedded broker: the
    # platform's CA under <data_dir>/pki issues both (gongyun.edge.broker_tls).
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    # Sparkplug group id -> tenant NAME whose data it carries (receive each group in one process)
    sparkplug_groups: dict[str, str] = Field(default_factory=dict)
    sparkplug_receiver: SparkplugReceiver = SparkplugReceiver.auto
    sparkplug_host_id: str = Field(default="gongyun", pattern=r"^[^/#+]+$")  # gateways' primary_host
    # HMAC key the platform signs remote (NCMD) device commands with: the gateways' [commands] secret
    command_secret: SecretStr | None = Field(default=None, min_length=16)

    secret_key: SecretStr | None = None
    admin_password: SecretStr | None = None
    admin_username: str = "admin"

    access_token_ttl_s: int = Field(default=900, gt=0)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, gt=0)
    lockout_threshold: int = Field(default=5, gt=0)
    lockout_window_s: int = Field(default=900, gt=0)
    lockout_duration_s: int = Field(default=900, gt=0)
    login_ip_threshold: int = Field(default=20, gt=0)  # failed sign-ins per client address...
    login_ip_window_s: int = Field(default=600, gt=0)  # ...within this window...
    login_ip_block_s: int = Field(default=900, gt=0)  # ...before the address waits this long
    # A user who signed in from an address within this many days may still sign in there while
    # the address is throttled (0: never); only a keyed hash of the address is stored.
    login_known_address_days: int = Field(default=30, ge=0)
    # While the address is throttled, a known user may fail this often there before that pair is
    # throttled too (the account's own lockout counter is left alone).
    login_known_blocked_failures: int = Field(default=3, gt=0)
    session_prune_every: int = Field(default=16, gt=0)  # prune dead sessions every Nth login/refresh...
    session_prune_batch: int = Field(default=500, gt=0)  # ...at most this many rows per table each time
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # The platform's secondary identifier prefix: each tenant's objects get an enterprise
    # prefix under it (88.100.1, 88.100.2, ...), allocated when the tenant's first object is made.
    id_prefix: str = Field(default="88.100", pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,99}$")
    # Base URL of the console and API as users reach it (identifier records point there);
    # default: http://<first host>:<port>.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # Reverse proxies (CIDRs) whose X-Forwarded-For is believed; empty: the TCP peer is the client.
    # NoDecode: GONGYUN_TRUSTED_PROXIES may be "10.0.0.0/8,fd00::/8" as well as a JSON list
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(default_factory=list)
    # Non-public networks (CIDRs) that URLs set by users may reach (a partner's node, its
    # resolver); empty: the server posts only to global addresses (gongyun.security.egress).
    outbound_allow: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(default_factory=list)

    # Audit transparency log: the Ed25519 key that signs checkpoints, as the signed-note
    # "PRIVATE+KEY+name+id+key" text, or a file holding it (else generated into the data
    # directory); the checkpoints' origin prefix; where checkpoints are published (files,
    # directories or http(s) URLs that accept PUT) and how often.
    audit_signing_key: SecretStr | None = None
    audit_signing_key_file: Path | None = None
    audit_origin: str | None = Field(default=None, pattern=r"^[^\s+]{1,200}$")
    audit_publish: list[str] = Field(default_factory=list)
    audit_publish_interval_s: int = Field(default=300, gt=0)

    # Envelope encryption of core (level-3) data: base64 32-byte master keys, newest first
    # (whitespace-separated; older ones only unwrap until `gongyun classify rotate-master`), or a
    # file holding them (else generated into the data directory).
    data_master_key: SecretStr | None = None
    data_master_key_file: Path | None = None

    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    @field_validator("trusted_proxies", "outbound_allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("not a JSON list of networks") from None
            else:
                value = [v for v in text.split(",") if v.strip()]
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            try:
                out.append(ip_network(item.strip()) if isinstance(item, str) else item)
            except ValueError:
                raise ValueError(f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8)") from None
        return out

    @field_validator("sparkplug_groups")
    @classmethod
    def _sparkplug_groups(cls, value: dict[str, str]) -> dict[str, str]:
        for group, tenant in value.items():
            if not group or any(ch in group for ch in "/#+"):
                raise ValueError(f"{group!r} is not a Sparkplug group id (no '/', '#' or '+')")
            if not tenant.strip():
                raise ValueError(f"group {group!r}: the tenant name is empty")
        return value

    @model_validator(mode="after")
    def _server_needs_urls(self) -> Settings:
        if self.profile is Profile.server:
            missing = [n for n in ("database_url", "bus_url", "secret_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"profile 'server' needs {', '.join(missing)}")
        if self.profile is Profile.server and self.mqtt_embedded is MqttEmbedded.on:
            raise ValueError(
                "mqtt_embedded 'on' is for the embedded profile; the server profile uses Mosquitto"
            )
        if (self.mqtt_username is None) != (self.mqtt_password is None):
            raise ValueError("mqtt_username and mqtt_password go together")
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ValueError("mqtt_cert_file and mqtt_key_file go together")
        if self.mqtt_cert_file is not None and not self.mqtt_url.startswith("mqtts://"):
            raise ValueError(
                "mqtt_cert_file needs an mqtts:// mqtt_url (the certificate is sent only over TLS)"
            )
        if (
            self.profile is Profile.embedded
            and self.mqtt_embedded is MqttEmbedded.on
            and self.mqtt_username is None
            and not _loopback_url(self.mqtt_url)
        ):
            raise ValueError(
                f"mqtt_embedded 'on' at {self.mqtt_url} would start an anonymous MQTT broker reachable "
                "from the network: set mqtt_username and mqtt_password, or use a loopback mqtt_url"
            )
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("secret_key must have at least 32 characters")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order: explicit arguments, then environment, then the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        """The metadata database URL (SQLite file in the data directory by default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gongyun.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        """The console and API base URL without a trailing slash (``public_url`` or host:port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host[0] if self.host else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def effective_audit_origin(self) -> str:
        """The audit checkpoints' origin prefix (``audit_origin`` or ``gongyun/<deployment_id>``)."""
        return self.audit_origin or f"gongyun/{self.deployment_id}"

    @property
    def effective_bus_url(self) -> str:
        """The bus URL (``memory://`` in the embedded profile)."""
        return self.bus_url or "memory://"

    def ensure_data_dir(self) -> Path:
        """Create the data directory if needed and return it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def jwt_secret(self) -> str:
        """The token signing secret: configured, or generated once into the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = (self.ensure_data_dir() / "secret.key").resolve()
        cached = _SECRETS.get(path)
        if cached:
            return cached
        if not path.exists():
            # Write a private temp file, then link it into place: a concurrent starter either
            # wins the link or reads the complete file, never an empty one.
            tmp = path.with_name(f".secret.{secrets.token_hex(6)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        value = path.read_text().strip()
        if len(value) < 32:
            raise ConfigError(f"{path} holds a signing key shorter than 32 characters")
        _SECRETS[path] = value
        return value


_SECRETS: dict[Path, str] = {}


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation problems into one ``ConfigError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached)."""
    return load_settings()
