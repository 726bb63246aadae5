"""A witness: remembers the checkpoints it has seen and refuses one inconsistent with them.

State is a directory with one JSON file per origin: the newest checkpoint accepted and the
history of every checkpoint seen. A new checkpoint is accepted when it is signed by a known
key and, against the newest one kept, has the same root at the same size, or a larger size
with a valid consistency proof. A smaller size, a different root at the same size or a bad
proof is a fork or a rollback: refused, and recorded as such.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gongyun.errors import Conflict
from gongyun.security.audit.merkle import ProofError, verify_consistency
from gongyun.security.audit.note import Checkpoint, Verifier


class CheckpointRefused(Conflict):
    """A checkpoint is not consistent with what the witness saw before."""

    code = "audit_checkpoint_refused"
    title = "Checkpoint refused"


@dataclass(frozen=True)
class Seen:
    """The newest checkpoint a witness accepted for an origin."""

    size: int
    root: bytes
    note: str


class Witness:
    """Keeps seen checkpoints under ``state_dir``; ``observe`` accepts or refuses a new one."""

    def __init__(self, state_dir: Path, verifiers: list[Verifier]) -> None:
        self.dir = state_dir
        self.verifiers = verifiers
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, origin: str) -> Path:
        return self.dir / f"{hashlib.sha256(origin.encode()).hexdigest()[:24]}.json"

    def _load(self, origin: str) -> dict[str, Any]:
        path = self._path(origin)
        return (
            json.loads(path.read_text())
            if path.exists()
            else {"origin": origin, "latest": None, "history": []}
        )

    def latest(self, origin: str) -> Seen | None:
        """The newest checkpoint accepted for ``origin``."""
        latest = self._load(origin)["latest"]
        if latest is None:
            return None
        return Seen(latest["size"], base64.b64decode(latest["root"]), latest["note"])

    def observe(self, note: str, proof: list[bytes] | None = None) -> Checkpoint:
        """Accept ``note`` (given a consistency proof from the newest size seen) or refuse it."""
        cp = Checkpoint.open(note, self.verifiers)
        state = self._load(cp.origin)
        old = self.latest(cp.origin)
        entry = {"size": cp.size, "root": base64.b64encode(cp.root).decode(), "note": note}
        try:
            if old is not None:
                if cp.size < old.size:
                    raise CheckpointRefused(
                        f"{cp.origin}: size {cp.size} is smaller than the {old.size} already seen (rollback)"
                    )
                if cp.size == old.size:
                    if cp.root != old.root:
                        raise CheckpointRefused(f"{cp.origin}: two different roots at size {cp.size} (fork)")
                else:
                    if proof is None:
                        raise CheckpointRefused(
                            f"{cp.origin}: a consistency proof from {old.size} to {cp.size} is needed"
                        )
                    try:
                        verify_consistency(old.size, cp.size, old.root, cp.root, proof)
                    except ProofError as exc:
                        raise CheckpointRefused(
                            f"{cp.origin}: not consistent with size {old.size}: {exc}"
                        ) from None
        except CheckpointRefused as exc:
            state["history"].append({**entry, "refused": exc.message})
            self._save(cp.origin, state)
            raise
        state["latest"] = entry
        state["history"].append(entry)
        self._save(cp.origin, state)
        return cp

    def _save(self, origin: str, state: dict[str, Any]) -> None:
        path = self._path(origin)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)
