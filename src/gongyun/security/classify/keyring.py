"""Envelope encryption: a data key per tenant and level, wrapped by the platform's master key.

Values are sealed with AES-256-GCM under the newest data key of their tenant and level; the
associated data binds a ciphertext to where it belongs (tenant, level, reference), so a sealed
value moved elsewhere does not open. Data keys are stored wrapped (AES-GCM under the master
key, whose id travels with them). Rotating the master key rewraps the data keys only, and
rotating a data key adds a version used for new writes while the old ones still open old
values: neither stops the platform. Deleting a tenant's data keys (crypto-shredding) makes every
value sealed under them unreadable for good, wherever copies of the ciphertext lie.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import BigInteger, Integer, LargeBinary, SmallInteger, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.config import Settings
from gongyun.db.base import Base, UTCDateTime, utcnow
from gongyun.errors import ConfigError, NotFound
from gongyun.security.classify.levels import Level

MASTER_FILE = "data-master.key"
KEY_TTL_S = 30.0
_SHARED: dict[tuple[bytes, ...], Keyring] = {}


class DataKeyGone(NotFound):
    """The data key a value was sealed with no longer exists (crypto-shredded)."""

    code = "data_key_shredded"
    title = "Data key shredded"


class DataKey(Base):
    """One version of a tenant's data key for one level, wrapped by a master key."""

    __tablename__ = "data_keys"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    master_id: Mapped[str] = mapped_column(String(16))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SealedPoint(Base):
    """A sample of a core tag, sealed: (key version, nonce || AES-GCM ciphertext of the value)."""

    __tablename__ = "sealed_points"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # microseconds since the epoch
    quality: Mapped[int] = mapped_column(SmallInteger, default=192)
    version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


def master_id(key: bytes) -> str:
    """A short public id of a master key."""
    return hashlib.sha256(b"gongyun-master|" + key).hexdigest()[:16]


def _parse_keys(text: str, where: str) -> list[bytes]:
    keys = []
    for line in text.split():
        try:
            raw = base64.b64decode(line, validate=True)
        except ValueError:
            raise ConfigError(f"{where}: a master key is not base64") from None
        if len(raw) != 32:
            raise ConfigError(f"{where}: a master key is not 32 bytes")
        keys.append(raw)
    if not keys:
        raise ConfigError(f"{where}: no master key")
    return keys


def master_keys(settings: Settings) -> list[bytes]:
    """The master keys, newest first (older ones still unwrap until rotation rewrapped them)."""
    if settings.data_master_key is not None:
        return _parse_keys(settings.data_master_key.get_secret_value(), "data_master_key")
    path = settings.data_master_key_file or settings.ensure_data_dir() / MASTER_FILE
    if not path.exists():
        if settings.data_master_key_file is not None:
            raise ConfigError(f"data_master_key_file {path} does not exist")
        _create_private(path, base64.b64encode(secrets.token_bytes(32)).decode())
    return _parse_keys(path.read_text(), str(path))


def _create_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


class Keyring:
    """Seals and opens values with per-tenant, per-level data keys (cached unwrapped in memory)."""

    def __init__(self, masters: list[bytes]) -> None:
        self.masters = {master_id(k): k for k in masters}
        self.current = master_id(masters[0])
        self._keys: dict[tuple[str, int, int], tuple[float, bytes]] = {}
        self._newest: dict[tuple[str, int], int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """A keyring with the configured master keys."""
        return cls(master_keys(settings))

    def _wrap(self, key: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self.masters[self.current]).encrypt(nonce, key, aad)

    def _unwrap(self, row: DataKey) -> bytes:
        master = self.masters.get(row.master_id)
        if master is None:
            raise ConfigError(f"data key of {row.tenant_id} wrapped by unknown master key {row.master_id}")
        aad = f"{row.tenant_id}|{row.level}|{row.version}".encode()
        return AESGCM(master).decrypt(row.wrapped[:12], row.wrapped[12:], aad)

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop cached keys (after shredding or rotation elsewhere)."""
        if tenant_id is None:
            self._keys.clear()
            self._newest.clear()
            return
        for k in [k for k in self._keys if k[0] == tenant_id]:
            del self._keys[k]
        for n in [n for n in self._newest if n[0] == tenant_id]:
            del self._newest[n]

    def cached(self, tenant_id: str, level: int, version: int) -> bytes | None:
        """A data key already unwrapped and still fresh (no database read), else None."""
        hit = self._keys.get((tenant_id, level, version))
        return hit[1] if hit is not None and time.monotonic() - hit[0] < KEY_TTL_S else None

    async def _load(self, session: AsyncSession, tenant_id: str, level: int, version: int) -> bytes:
        cached = self._keys.get((tenant_id, level, version))
        # an unwrapped key is kept briefly: a shred in another process takes effect here within KEY_TTL_S
        if cached is not None and time.monotonic() - cached[0] < KEY_TTL_S:
            return cached[1]
        row = await session.get(DataKey, (tenant_id, level, version))
        if row is None:
            self.forget(tenant_id)
            raise DataKeyGone(f"the level-{level} data key of this tenant was shredded")
        key = self._unwrap(row)
        self._keys[(tenant_id, level, version)] = (time.monotonic(), key)
        return key

    async def newest(self, session: AsyncSession, tenant_id: str, level: int) -> tuple[int, bytes]:
        """The version and key new values are sealed with (made on first use)."""
        version = self._newest.get((tenant_id, level))
        if version is None:
            found = await session.execute(
                select(DataKey.version)
                .where(DataKey.tenant_id == tenant_id, DataKey.level == level)
                .order_by(DataKey.version.desc())
                .limit(1)
            )
            version = found.scalar()
            if version is None:
                version = await self.rotate_data_key(session, tenant_id, level)
            self._newest[(tenant_id, level)] = version
        return version, await self._load(session, tenant_id, level, version)

    async def rotate_data_key(self, session: AsyncSession, tenant_id: str, level: int) -> int:
        """Add a new data key version (used for new values from now on); return it."""
        last = (
            await session.execute(
                select(DataKey.version).where(DataKey.tenant_id == tenant_id, DataKey.level == level)
            )
        ).scalars()
        version = max(last, default=0) + 1
        key = AESGCM.generate_key(bit_length=256)
        aad = f"{tenant_id}|{level}|{version}".encode()
        session.add(
            DataKey(
                tenant_id=tenant_id,
                level=level,
                version=version,
                master_id=self.current,
                wrapped=self._wrap(key, aad),
            )
        )
        await session.flush()
        self._keys[(tenant_id, level, version)] = (time.monotonic(), key)
        self._newest[(tenant_id, level)] = version
        return version

    async def rewrap_all(self, session: AsyncSession) -> int:
        """Rewrap every data key under the current master key (after adding a new one); return how many."""
        n = 0
        for row in (await session.execute(select(DataKey))).scalars():
            if row.master_id == self.current:
                continue
            key = self._unwrap(row)
            row.wrapped = self._wrap(key, f"{row.tenant_id}|{row.level}|{row.version}".encode())
            row.master_id = self.current
            n += 1
        await session.flush()
        return n

    async def seal(
        self, session: AsyncSession, tenant_id: str, level: int, ref: str, data: bytes
    ) -> tuple[int, bytes]:
        """Encrypt ``data`` for (tenant, level, ref): (key version, nonce || ciphertext)."""
        version, key = await self.newest(session, tenant_id, level)
        return version, seal_with(key, tenant_id, level, ref, data)

    async def open(
        self, session: AsyncSession, tenant_id: str, level: int, ref: str, version: int, sealed: bytes
    ) -> bytes:
        """Decrypt a sealed value (``DataKeyGone`` after shredding)."""
        return open_with(await self._load(session, tenant_id, level, version), tenant_id, level, ref, sealed)

    async def shred(self, session: AsyncSession, tenant_id: str, level: int | None = None) -> int:
        """Delete a tenant's data keys (one level or all): what they sealed is unreadable for good."""
        query = delete(DataKey).where(DataKey.tenant_id == tenant_id)
        if level is not None:
            query = query.where(DataKey.level == level)
        result = await session.execute(query)
        self.forget(tenant_id)
        return int(getattr(result, "rowcount", 0) or 0)


def seal_with(key: bytes, tenant_id: str, level: int, ref: str, data: bytes) -> bytes:
    """Encrypt ``data`` under a data key already loaded (``Keyring.newest``): nonce || ciphertext."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, data, f"{tenant_id}|{level}|{ref}".encode())


def open_with(key: bytes, tenant_id: str, level: int, ref: str, sealed: bytes) -> bytes:
    """Decrypt what ``seal_with`` made (``DataKeyGone`` when it does not open here)."""
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], f"{tenant_id}|{level}|{ref}".encode())
    except InvalidTag:
        raise DataKeyGone("the sealed value does not open (moved or damaged)") from None


def shared_keyring(settings: Settings) -> Keyring:
    """The process's keyring for these master keys (one cache, so a shred is seen by every user)."""
    keys = tuple(master_keys(settings))
    ring = _SHARED.get(keys)
    if ring is None:
        ring = _SHARED[keys] = Keyring(list(keys))
    return ring


def configured_keyring(settings: Settings) -> Keyring | None:
    """The shared keyring if master keys are configured or already on disk, else None.

    For a process that serves the platform's data but must not make a master key of its own (an
    identifier node on the platform's database): a new key there would seal nothing it could open.
    """
    found = (
        settings.data_master_key is not None
        or settings.data_master_key_file is not None
        or (settings.data_dir / MASTER_FILE).exists()
    )
    return shared_keyring(settings) if found else None


def level_of(value: str) -> Level:
    """The level of a stored classification string."""
    return Level.parse(value)
