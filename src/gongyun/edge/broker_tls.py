"""Mutual TLS for the embedded broker: client certificates of the platform's CA and the per-device ACL.

With :class:`BrokerTls` the embedded broker listens with TLS and accepts only clients that
present a certificate the CA bundle verifies and the CRL file does not list (the file is read
again when it changes, so a revocation takes effect without a restart). The certificate's CN is
the client's identity, whatever username it sends (Mosquitto's ``use_identity_as_username``), and
:mod:`gongyun.security.pki.acl` decides what it may publish, subscribe to and receive: the same
rules as the generated Mosquitto ACL. A will must be a topic the client may publish. Sessions
must be clean (Sparkplug requires it of edge nodes and hosts): a resumed session would keep the
identity of the connection that made it.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from cryptography import x509
from cryptography.x509.oid import NameOID

from gongyun.config import Settings
from gongyun.security.pki.acl import Rules, allowed, rules_for
from gongyun.security.pki.ca import (
    PLATFORM_IDENTITY,
    CertificateAuthority,
    key_pem,
    make_csr,
    new_key,
    write_private,
)
from gongyun.sparkplug.tls import client_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS files: CA bundle (verifies clients), its certificate and key, and the CRLs."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path | None = None


class _Crls:
    """The revoked (issuer, serial) pairs of a PEM file of CRLs, re-read when the file changes."""

    def __init__(self) -> None:
        self._stamp: tuple[str, int, int] | None = None
        self._revoked: set[tuple[bytes, int]] = set()

    def revoked(self, path: Path, cert: x509.Certificate) -> bool:
        """Whether a CRL in ``path`` by ``cert``'s issuer lists it (an unreadable file refuses all)."""
        try:
            st = os.stat(path)
            stamp = (str(path), st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                data = path.read_bytes()
                revoked: set[tuple[bytes, int]] = set()
                for part in data.split(b"-----BEGIN")[1:]:
                    crl = x509.load_pem_x509_crl(b"-----BEGIN" + part)
                    issuer = crl.issuer.public_bytes()
                    revoked.update((issuer, r.serial_number) for r in crl)
                self._revoked, self._stamp = revoked, stamp
        except (OSError, ValueError) as exc:
            log.warning("embedded MQTT broker: cannot read the CRL file %s (%s): refusing clients", path, exc)
            return True
        return (cert.issuer.public_bytes(), cert.serial_number) in self._revoked


_CRLS = _Crls()


def peer_certificate(session: Session) -> x509.Certificate | None:
    """The client certificate the TLS handshake verified, if the client presented one."""
    ssl_object = session.ssl_object
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def _identity(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


class CertificateAuth(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt auth plugin: a verified, unrevoked client certificate; its CN becomes the username."""

    @dataclass
    class Config:
        """The PEM file of CRLs ("" for none)."""

        crl_file: str = ""

    async def authenticate(self, *, session: Session) -> bool | None:
        """Accept a client with a good certificate, a clean session and a will it may publish."""
        cfg = self.config
        assert isinstance(cfg, CertificateAuth.Config)
        cert = peer_certificate(session)
        ident = _identity(cert) if cert is not None else None
        why = ""
        if cert is None or ident is None:
            why = "no client certificate"
        elif cfg.crl_file and _CRLS.revoked(Path(cfg.crl_file), cert):
            why = f"certificate {cert.serial_number:x} of {ident!r} is revoked"
        elif not session.clean_session:
            why = f"{ident!r} asked to resume a session (clean session required)"
        elif (
            session.will_flag
            and session.will_topic
            and not allowed(rules_for(ident).write, session.will_topic)
        ):
            why = f"{ident!r} may not leave a will on {session.will_topic}"
        if why:
            log.warning("embedded MQTT broker: refused a client from %s: %s", session.remote_address, why)
            return False
        session.username = ident  # the certificate names the client, not what it claims
        return True


def _rules(session: Session | None) -> Rules:
    return rules_for(session.username) if session is not None and session.username else Rules((), ())


class CertificateAcl(BaseTopicPlugin):  # type: ignore[misc]
    """amqtt topic plugin: the per-device ACL of :mod:`gongyun.security.pki.acl` by certificate identity."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        """Publish within the write rules; subscribe and receive within the read rules."""
        if topic is None:
            return False
        rules = _rules(session)
        ok = allowed(rules.write if action is Action.PUBLISH else rules.read, topic)
        if not ok and action is not Action.RECEIVE:
            log.warning(
                "embedded MQTT broker: refused %r %s %s",
                session.username if session else None,
                "publishing to" if action is Action.PUBLISH else "subscribing to",
                topic,
            )
        return ok


def _pki(settings: Settings) -> CertificateAuthority:
    return CertificateAuthority(settings.ensure_data_dir() / "pki")


def embedded_tls(settings: Settings, host: str) -> BrokerTls:
    """The embedded broker's TLS files from the platform's CA: a server certificate, CA bundle, CRLs."""
    ca = _pki(settings)
    out = ca.dir / "broker"
    cert, key = ca.issue_server(sorted({host, "localhost", "127.0.0.1"}))
    write_private(out / "server.key", key)
    (out / "server.crt").write_bytes(cert)
    (out / "ca.pem").write_bytes(ca.bundle())
    return BrokerTls(out / "ca.pem", out / "server.crt", out / "server.key", ca.write_crl())


def platform_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the platform's own MQTT clients (None for ``mqtt://``).

    Without ``mqtt_cert_file`` the platform's CA issues the platform's client certificate once
    (``<data_dir>/pki/broker/platform.crt``); without ``mqtt_ca_file`` the CA's root is trusted.
    """
    if not settings.mqtt_url.startswith("mqtts://"):
        return None
    cert, key = settings.mqtt_cert_file, settings.mqtt_key_file
    ca_file = settings.mqtt_ca_file
    if cert is None or key is None or ca_file is None:
        ca = _pki(settings)
        ca_file = ca_file or ca.dir / "root.crt"
        if cert is None or key is None:
            cert, key = ca.dir / "broker" / "platform.crt", ca.dir / "broker" / "platform.key"
            if not (cert.exists() and key.exists()):
                pkey = new_key()
                issued = ca.issue_platform(make_csr(pkey, PLATFORM_IDENTITY))
                write_private(key, key_pem(pkey))
                cert.write_bytes(issued.cert_pem + issued.chain_pem)
    return client_context(ca_file, cert, key)
