"""C2SP signed notes (Ed25519) and tlog checkpoints.

A checkpoint is the note text ``origin\\nsize\\nbase64(root)\\n[extensions]`` followed by a
blank line and signature lines ``— name base64(key id || signature)``
(https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint). The key id is the first four
bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``; keys travel as the usual
``name+hex-id+base64(0x01 || key)`` strings (``PRIVATE+KEY+...`` for the private half).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gongyun.errors import ValidationFailed

ALG_ED25519 = b"\x01"
DASH = "\u2014"


class NoteError(ValidationFailed):
    """A signed note or checkpoint is malformed, unsigned or signed by an unknown key."""

    code = "audit_note_invalid"
    title = "Signed note invalid"


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte id of an Ed25519 key under ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key."""

    name: str
    public: bytes

    @property
    def id(self) -> bytes:
        """The key id."""
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        """The verifier key string ``name+hexid+base64(0x01||key)``."""
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(ALG_ED25519 + self.public).decode()}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read a verifier key string."""
        try:
            name, hid, b64 = text.strip().split("+", 2)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("not a verifier key (name+id+key)") from None
        if not _valid_name(name) or raw[:1] != ALG_ED25519 or len(raw) != 33:
            raise NoteError("not an Ed25519 verifier key")
        v = cls(name, raw[1:])
        if v.id.hex() != hid.lower():
            raise NoteError("verifier key id does not match the key")
        return v

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key."""

    name: str
    seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key."""
        if not _valid_name(name):
            raise NoteError(f"{name!r} is not a key name (no spaces or '+')")
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, raw)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Read ``PRIVATE+KEY+name+hexid+base64(0x01||seed)``."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signer key (PRIVATE+KEY+name+id+key)")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise NoteError("signer key is not base64") from None
        if raw[:1] != ALG_ED25519 or len(raw) != 33 or not _valid_name(parts[2]):
            raise NoteError("not an Ed25519 signer key")
        signer = cls(parts[2], raw[1:])
        if signer.verifier().id.hex() != parts[3].lower():
            raise NoteError("signer key id does not match the key")
        return signer

    def private_text(self) -> str:
        """The private key string (keep it secret: never log it)."""
        b64 = base64.b64encode(ALG_ED25519 + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().id.hex()}+{b64}"

    def verifier(self) -> Verifier:
        """The public half."""
        return Verifier(self.name, _raw_public(Ed25519PrivateKey.from_private_bytes(self.seed).public_key()))

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def sign_note(text: str, signer: Signer) -> str:
    """Sign note ``text`` (non-empty, ending in a newline): the text, a blank line, a signature."""
    if not text.endswith("\n") or "\r" in text:
        raise NoteError("a note's text ends with a newline and has no carriage returns")
    sig = base64.b64encode(signer.verifier().id + signer.sign(text.encode())).decode()
    return f"{text}\n{DASH} {signer.name} {sig}\n"


def open_note(message: str, verifiers: list[Verifier]) -> tuple[str, list[str]]:
    """Return the note text and the names of the known keys whose signatures verify.

    Raises ``NoteError`` if the note is malformed, a known key's signature is bad, or no known
    key signed it. Signatures by unknown keys are ignored, as the spec says.
    """
    split = message.rfind("\n\n")
    if split < 0 or not message.endswith("\n"):
        raise NoteError("not a signed note (no blank line before the signatures)")
    text, sig_block = message[: split + 1], message[split + 2 :]
    known = {(v.name, v.id): v for v in verifiers}
    good: list[str] = []
    for line in sig_block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise NoteError("malformed signature line")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        v = known.get((parts[1], raw[:4]))
        if v is None:
            continue
        if not v.verify(text.encode(), raw[4:]):
            raise NoteError(f"bad signature by {v.name}")
        good.append(v.name)
    if not good:
        raise NoteError("no signature by a known key")
    return text, good


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        """The signed checkpoint."""
        return sign_note(self.text(), signer)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash, each on a line")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("bad checkpoint origin or size")
        try:
            raw = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root is not base64") from None
        if len(raw) != 32:
            raise NoteError("checkpoint root is not 32 bytes")
        return cls(origin, int(size), raw, tuple(lines[3:-1]))

    @classmethod
    def open(cls, message: str, verifiers: list[Verifier]) -> Checkpoint:
        """Verify a signed checkpoint and read it."""
        text, _ = open_note(message, verifiers)
        return cls.parse(text)
