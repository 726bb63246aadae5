"""RFC 9162 Merkle tree hashing, proofs and their verification (pure, no storage).

Leaves hash as ``SHA-256(0x00 || data)``, interior nodes as ``SHA-256(0x01 || left || right)``
(RFC 9162 section 2.1.1, same as RFC 6962). A tree of ``n`` leaves is addressed by *complete
subtrees*: node ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
Every hash a proof needs is either such a node or the hash of a right-edge range made of a few
of them, so a store that keeps the complete-subtree hashes answers any proof in O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from gongyun.errors import ValidationFailed

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]  # (level, index)


class ProofError(ValidationFailed):
    """A proof, size or root does not check out."""

    code = "audit_proof_invalid"
    title = "Audit proof invalid"


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of a leaf's data."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (the reference recursion; for small trees and tests)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    # bottom-up, pairing left to right; an odd last node is carried up unchanged (same as MTH)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The complete subtrees, left to right, that make up leaves ``[start, end)``.

    ``start`` must be aligned as RFC 9162's recursion leaves it (a multiple of the largest
    power of two not above ``end - start``), which holds for every range a proof asks for.
    """
    out: list[NodeId] = []
    pos = start
    while pos < end:
        size = end - pos
        level = size.bit_length() - 1
        while pos % (1 << level):
            level -= 1
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of a range's complete subtrees (left to right) into the range's hash."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the inclusion proof of ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()  # RFC order: from the leaf's sibling up to the root's child
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the consistency proof from ``first`` to ``second``."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second}")
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


NodeReader = Callable[[Iterable[NodeId]], dict[NodeId, bytes]]


def hashes_for(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """Hash each range from the complete-subtree hashes ``read`` returns (one batched read)."""
    parts = [range_nodes(a, b) for a, b in ranges]
    known = read({n for p in parts for n in p})
    try:
        return [fold([known[n] for n in p]) for p in parts]
    except KeyError as exc:
        raise ProofError(f"node {exc.args[0]} is missing from the store") from None


def in_memory_reader(leaf_hashes: Sequence[bytes]) -> NodeReader:
    """A ``NodeReader`` over a list of leaf hashes (tests, offline verification)."""

    def read(ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        out: dict[NodeId, bytes] = {}
        for level, index in ids:
            lo = index << level
            out[(level, index)] = root_of(leaf_hashes[lo : lo + (1 << level)])
        return out

    return read


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """The RFC 9162 inclusion proof (audit path) of leaf ``index`` in a tree of ``size``."""
    return hashes_for(inclusion_ranges(index, size), read)


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    """The RFC 9162 consistency proof between tree sizes ``first`` and ``second``."""
    if first == second:
        return []
    return hashes_for(consistency_ranges(first, second), read)


def _check_sizes(hashes: Iterable[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError("a hash is not 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    _check_sizes([leaf, *proof])
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows tree ``first`` is a prefix of tree ``second``."""
    _check_sizes(proof)
    if first < 0 or second < first:
        raise ProofError(f"tree size {second} is smaller than {first}")
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("same size, different roots: the log forked")
        return
    if first == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != first_root or sr != second_root:
        raise ProofError("consistency proof does not match the roots: the log was rewritten")


class CompactRange:
    """The right edge of a tree: one hash per set bit of its size; O(log n) append and root."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ProofError("compact range does not match its size")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; return the complete subtrees ``(level, index, hash)`` it completes."""
        made = [(0, self.size, leaf)]
        cur, idx, level = leaf, self.size, 0
        while idx & 1:
            cur = node_hash(self.hashes.pop(), cur)
            idx, level = idx >> 1, level + 1
            made.append((level, idx, cur))
        self.hashes.append(cur)
        self.size += 1
        return made

    def root(self) -> bytes:
        """The tree's root hash."""
        return fold(self.hashes) if self.hashes else EMPTY_ROOT
