"""The platform's checkpoint signing key: configured, in a key file, or generated once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gongyun.config import Settings
from gongyun.errors import ConfigError
from gongyun.security.audit.note import NoteError, Signer, Verifier

KEY_FILE = "audit-signing.key"
_CACHE: dict[str, Signer] = {}


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only, atomically (a concurrent starter reads it whole)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def audit_signer(settings: Settings) -> Signer:
    """The signer of audit checkpoints (never logged; only its public half leaves the process)."""
    if settings.audit_signing_key is not None:
        text, where = settings.audit_signing_key.get_secret_value(), "audit_signing_key"
    else:
        path = settings.audit_signing_key_file or settings.ensure_data_dir() / KEY_FILE
        where = str(path)
        if not path.exists():
            if settings.audit_signing_key_file is not None:
                raise ConfigError(f"audit_signing_key_file {path} does not exist")
            _write_private(path, Signer.generate(settings.effective_audit_origin).private_text())
        text = path.read_text()
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    try:
        signer = Signer.parse(text)
    except NoteError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    _CACHE[text] = signer
    return signer


def audit_verifier(settings: Settings) -> Verifier:
    """The public key that verifies the platform's checkpoints."""
    return audit_signer(settings).verifier()
