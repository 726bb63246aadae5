"""TLS for MQTT clients: a context that trusts a CA file and presents a client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from gongyun.errors import ConfigError


def client_context(
    ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context verifying the broker against ``ca_file``, with the client's cert and key."""
    if (cert_file is None) != (key_file is None):
        raise ConfigError("an MQTT client certificate needs both its certificate and its key file")
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file is not None and key_file is not None:
            ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the MQTT TLS files ({ca_file}, {cert_file}): {exc}") from exc
    return ctx
