"""RFC 9162 hashing and proofs against published test vectors.

Vectors: ``tests/security/data/rfc6962_vectors.json``, taken from the transparency-dev/merkle
project (https://github.com/transparency-dev/merkle, Apache-2.0): ``testonly/constants.go``
(leaf inputs, node and root hashes) and ``proof/verify_test.go`` (inclusion and consistency
proofs, and the ways it corrupts them, repeated here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gongyun.security.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    in_memory_reader,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

V: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
H = bytes.fromhex
LEAVES = [leaf_hash(H(x)) for x in V["leaf_inputs"]]
ROOTS = [H(r) for r in V["roots_by_size"]]
SOME = H("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_leaf_node_and_root_hashes() -> None:
    assert [h.hex() for h in LEAVES] == V["leaf_hashes"]
    assert [node_hash(LEAVES[2 * i], LEAVES[2 * i + 1]).hex() for i in range(4)] == V["node_hashes_level1"]
    assert ROOTS[0] == EMPTY_ROOT
    cr = CompactRange()
    for n in range(1, 9):
        cr.append(LEAVES[n - 1])
        assert root_of(LEAVES[:n]) == ROOTS[n] == cr.root()


@pytest.mark.parametrize("case", V["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_inclusion_vectors_and_their_corruptions(case: dict[str, Any]) -> None:
    i, n, want = case["index"], case["size"], [H(p) for p in case["proof"]]
    assert inclusion_proof(i, n, in_memory_reader(LEAVES)) == want
    root, leaf = ROOTS[n], LEAVES[i]
    verify_inclusion(i, n, leaf, want, root)
    bad: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (i - 1, n, leaf, want, root),
        (i + 1, n, leaf, want, root),
        (i ^ 2, n, leaf, want, root),
        (i, n * 2, leaf, want, root),
        (i, n // 2, leaf, want, root),
        (i, n, b"WrongLeaf", want, root),
        (i, n, leaf, want, EMPTY_ROOT),
        (i, n, leaf, want, SOME),
        (i, n, leaf, [*want, b""], root),
        (i, n, leaf, [*want, root], root),
        (i, n, leaf, [b"", *want], root),
        (i, n, leaf, [root, *want], root),
    ]
    for k in range(len(want)):
        flipped = list(want)
        flipped[k] = bytes([flipped[k][0] ^ 8]) + flipped[k][1:]
        bad.append((i, n, leaf, flipped, root))
    if want:
        bad.append((i, n, leaf, want[:-1], root))
    if len(want) > 1:
        bad.append((i, n, leaf, [want[0], SOME, *want[1:]], root))
    for bi, bn, bl, bp, br in bad:
        if bi == i and bn == n and bl == leaf and bp == want and br == root:
            continue  # e.g. i ^ 2 == i + 1 for some i: not a corruption
        with pytest.raises(ProofError):
            verify_inclusion(bi, bn, bl, bp, br)


@pytest.mark.parametrize("case", V["consistency"], ids=lambda c: f"{c['first']}-to-{c['second']}")
def test_consistency_vectors_and_their_corruptions(case: dict[str, Any]) -> None:
    m, n, want = case["first"], case["second"], [H(p) for p in case["proof"]]
    assert consistency_proof(m, n, in_memory_reader(LEAVES)) == want
    r1, r2 = ROOTS[m], ROOTS[n]
    verify_consistency(m, n, r1, r2, want)
    if not want:
        return
    bad = [
        (m - 1, n, r1, r2, want),
        (m + 1, n, r1, r2, want),
        (m ^ 2, n, r1, r2, want),
        (m, n * 2, r1, r2, want),
        (m, n // 2, r1, r2, want),
        (m, n, SOME, r2, want),
        (m, n, r1, SOME, want),
        (m, n, r2, r1, want),
        (m, n, r1, r2, []),
        (m, n, r1, r2, [*want, b""]),
        (m, n, r1, r2, [*want, r1]),
        (m, n, r1, r2, [*want, r2]),
        (m, n, r1, r2, [b"", *want]),
        (m, n, r1, r2, [r1, *want]),
        (m, n, r1, r2, [r2, *want]),
        (m, n, r1, r2, [want[0], *want]),
        (m, n, r1, r2, want[:-1]),
    ]
    for k in range(len(want)):
        flipped = list(want)
        flipped[k] = bytes([flipped[k][0] ^ 16]) + flipped[k][1:]
        bad.append((m, n, r1, r2, flipped))
    for a, b, x, y, p in bad:
        with pytest.raises(ProofError):
            verify_consistency(a, b, x, y, p)


def test_edge_cases_of_consistency() -> None:
    verify_consistency(0, 0, b"\0" * 32, b"\0" * 32, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    with pytest.raises(ProofError):
        verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])  # time travel
    with pytest.raises(ProofError):
        verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])  # same size, two roots: a fork


def test_every_proof_of_every_small_tree_verifies() -> None:
    leaves = [leaf_hash(f"event {i}".encode()) for i in range(40)]
    read, cr = in_memory_reader(leaves), CompactRange()
    for n in range(1, 41):
        cr.append(leaves[n - 1])
        for i in range(n):
            verify_inclusion(i, n, leaves[i], inclusion_proof(i, n, read), cr.root())
        for m in range(1, n + 1):
            verify_consistency(m, n, root_of(leaves[:m]), cr.root(), consistency_proof(m, n, read))
