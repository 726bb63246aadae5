"""make bench-audit: the audit transparency log beside the old hash chain, in one run.

Appends ``--events`` events (1 M by default) to a hash-chain-only trail (the audit as it was
before the transparency log: head bump, chained digest, event row) and to the transparency log
(chain + RFC 9162 tree with its complete-subtree rows), in transactions of ``--batch`` events,
then ``--single`` events one transaction each; then times inclusion and consistency proofs at
the full size and the chain's way of showing one event is untouched (recompute from genesis).
The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from gongyun.db import Database, upgrade
from gongyun.db.base import utcnow
from gongyun.security.audit import chain, tlog
from gongyun.security.audit.merkle import verify_consistency, verify_inclusion

CHAIN, TREE = "bench-chain", "bench-tree"


async def chain_only_many(session: Any, tenant: str, entries: list[chain.Entry]) -> None:
    """The audit before the tree: bump the head, chain each event, write rows, move the head."""
    last, prev, _ = await chain._bump_or_create(session, tenant, len(entries))
    ts, rows = utcnow(), []
    for seq, entry in enumerate(entries, start=last - len(entries) + 1):
        fields = chain._fields(*entry)
        body = chain.leaf_body(tenant, seq, ts.isoformat(), fields)
        digest = hashlib.sha256(f"{prev}|{body}".encode()).hexdigest()
        rows.append({"tenant_id": tenant, "seq": seq, "ts": ts, "prev_hash": prev, "hash": digest, **fields})
        prev = digest
    await session.execute(insert(chain.AuditEvent), rows)
    await session.execute(
        update(chain.AuditHead)
        .where(chain.AuditHead.tenant_id == tenant)
        .values(hash=prev)
        .execution_options(synchronize_session=False)
    )


def _entries(start: int, n: int) -> list[chain.Entry]:
    return [("bench", "thing.do", f"obj-{i}", "success", {"n": i}) for i in range(start, start + n)]


async def _append(db: Database, tenant: str, total: int, batch: int, tree: bool) -> float:
    t0 = time.perf_counter()
    done = 0
    while done < total:
        n = min(batch, total - done)
        async with db.session() as s:
            if tree:
                await chain.record_many(s, tenant, _entries(done, n))
            else:
                await chain_only_many(s, tenant, _entries(done, n))
        done += n
    return total / (time.perf_counter() - t0)


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[int(len(values) * 0.99) - 1]
    return f"median {statistics.median(values) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms"


async def main(args: argparse.Namespace) -> None:
    tmp = tempfile.TemporaryDirectory(prefix="bench-audit-")
    url = args.db_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'audit.db'}"
    await upgrade(url)
    db = Database(url)
    rng = random.Random(7)
    try:
        print(f"database {url.split('://')[0]}, {args.events} events in transactions of {args.batch}")
        chain_rate = await _append(db, CHAIN, args.events, args.batch, tree=False)
        print(f"append, hash chain only        : {chain_rate:10.0f} events/s")
        tree_rate = await _append(db, TREE, args.events, args.batch, tree=True)
        print(f"append, chain + RFC 9162 tree  : {tree_rate:10.0f} events/s ({tree_rate / chain_rate:.2f}x)")
        single_chain = await _append(db, CHAIN + "-1", args.single, 1, tree=False)
        single_tree = await _append(db, TREE + "-1", args.single, 1, tree=True)
        print(
            f"append one per transaction     : chain {single_chain:.0f} events/s, "
            f"tree {single_tree:.0f} events/s"
        )

        n = args.events
        async with db.session() as s:
            root = await tlog.root_at(s, TREE, n)
            times, sizes = [], []
            for _ in range(args.proofs):
                idx = rng.randrange(n)
                t0 = time.perf_counter()
                proof = await tlog.inclusion_proof(s, TREE, idx, n)
                leaf = await tlog.leaf_hash_at(s, TREE, idx)
                times.append(time.perf_counter() - t0)
                verify_inclusion(idx, n, leaf, proof, root)
                sizes.append(len(proof))
            incl = statistics.median(times)
            print(
                f"inclusion proof at {n}: {_ms(times)}; "
                f"{max(sizes)} hashes = {32 * max(sizes)} bytes (verified)"
            )
            ctimes, csizes = [], []
            for _ in range(args.proofs // 4 or 1):
                first = rng.randrange(1, n)
                old_root = await tlog.root_at(s, TREE, first)
                t0 = time.perf_counter()
                proof = await tlog.consistency_proof(s, TREE, first, n)
                ctimes.append(time.perf_counter() - t0)
                verify_consistency(first, n, old_root, root, proof)
                csizes.append(len(proof))
            print(
                f"consistency proof to {n}: {_ms(ctimes)}; "
                f"up to {max(csizes)} hashes = {32 * max(csizes)} bytes (verified)"
            )
            t0 = time.perf_counter()
            checked = await chain.verify(s, CHAIN)
            chain_s = time.perf_counter() - t0
            assert checked.ok and checked.count == n
            print(f"hash chain: showing one event is intact = recomputing all {n} links: {chain_s:.1f} s")
        print(
            f"SUMMARY bench-audit: {n} events; append {chain_rate:.0f} ev/s chain "
            f"vs {tree_rate:.0f} ev/s tree ({tree_rate / chain_rate:.2f}x); "
            f"inclusion proof {incl * 1e3:.2f} ms median, {max(sizes)} hashes "
            f"({32 * max(sizes)} B); consistency {statistics.median(ctimes) * 1e3:.2f} ms median; "
            f"chain check {chain_s:.1f} s"
        )
    finally:
        await db.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--db-url", default=None)
    asyncio.run(main(parser.parse_args()))
