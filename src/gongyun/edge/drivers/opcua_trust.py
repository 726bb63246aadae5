"""How the OPC UA driver decides to trust a server: the platform CA, a pinned certificate, or TOFU.

With Basic256Sha256 a server must be checked against ``server_ca`` (certificates the platform's
CA issued) or ``server_certificate`` (one pinned certificate). Without either the device is
refused, unless the engineer sets ``trust_on_first_use``: then the first certificate the server
presents is pinned (``trusted/<device>.der`` beside the gateway's own certificate) and used from
then on, a later different one is refused, and each decision is appended to
``trusted/trust.jsonl`` (time, device, URL, subject, SHA-256) and logged as a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from asyncua.client.client import Client
from cryptography import x509

from gongyun.edge.config import DeviceConfig
from gongyun.edge.errors import DeviceError

log = logging.getLogger(__name__)


async def server_certificates(url: str, request_timeout: float) -> set[bytes]:
    """The DER certificates a server's endpoints present (refused if there is none)."""
    probe = Client(url, timeout=request_timeout)
    endpoints = await probe.connect_and_get_server_endpoints()
    ders = {bytes(e.ServerCertificate) for e in endpoints if e.ServerCertificate}
    if not ders:
        raise DeviceError(f"{url}: the server presents no certificate")
    return ders


def trust_dir(config: DeviceConfig) -> Path:
    """Where a device's pinned server certificate and the trust journal live."""
    assert config.certificate is not None
    return config.certificate.parent / "trusted"


def _journal(config: DeviceConfig, action: str, der: bytes) -> None:
    cert = x509.load_der_x509_certificate(der)
    digest = hashlib.sha256(der).hexdigest()
    record = {
        "time": datetime.now(UTC).isoformat(),
        "action": action,
        "device": config.name,
        "url": config.url,
        "subject": cert.subject.rfc4514_string(),
        "sha256": digest,
    }
    path = trust_dir(config) / "trust.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    log.warning(
        "OPC UA trust on first use: %s the server certificate %s (sha256 %s) of device %s at %s",
        action,
        record["subject"],
        digest[:16],
        config.name,
        config.url,
    )


async def pinned_certificate(config: DeviceConfig) -> Path:
    """The server certificate to use under trust on first use: pinned now, or the one pinned before."""
    assert config.url is not None
    pin = trust_dir(config) / f"{config.name}.der"
    ders = await server_certificates(config.url, config.timeout * 4)
    if pin.exists():
        known = pin.read_bytes()
        if known not in ders:
            _journal(config, "refused", sorted(ders)[0])
            raise DeviceError(f"{config.url}: the server certificate changed since it was pinned at {pin}")
        return pin
    der = sorted(ders)[0]
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_bytes(der)
    _journal(config, "pinned", der)
    return pin
