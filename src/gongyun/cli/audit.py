"""``gongyun audit ...``: checkpoints, proofs, export, offline verification, a witness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gongyun.cli.common import console, db_session, run, settings
from gongyun.errors import GongyunError, InvalidInput
from gongyun.security import accounts
from gongyun.security.audit import tlog
from gongyun.security.audit.keys import audit_signer
from gongyun.security.audit.merkle import ProofError, verify_inclusion
from gongyun.security.audit.note import Checkpoint, Verifier
from gongyun.security.audit.publish import publish
from gongyun.security.audit.witness import Witness

audit_app = typer.Typer(help="The audit transparency log.", no_args_is_help=True)

TenantOpt = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant name (default: the platform log).")
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option("--key", "-k", help="Verifier key (name+id+key) or a file holding one; repeatable."),
]


async def _tree(session: object, tenant: str | None) -> str:
    if tenant is None:
        return tlog.PLATFORM_LOG
    return (await accounts.get_tenant_by_name(session, tenant)).id  # type: ignore[arg-type]


def _verifiers(keys: list[str] | None) -> list[Verifier]:
    if not keys:
        return [audit_signer(settings()).verifier()]
    out = []
    for k in keys:
        path = Path(k)
        out.append(Verifier.parse(path.read_text() if path.is_file() else k))
    return out


@audit_app.command("key")
def key() -> None:
    """Print the verifier key of the platform's checkpoints (public; give it to witnesses)."""
    console.print(audit_signer(settings()).verifier().vkey(), highlight=False)


@audit_app.command("checkpoint")
def checkpoint_cmd(tenant: TenantOpt = None) -> None:
    """Sign and print the latest checkpoint of a tenant's log (or the platform's)."""

    async def go() -> str:
        cfg = settings()
        async with db_session(cfg) as session:
            tree = await _tree(session, tenant)
            return await tlog.checkpoint(session, tree, audit_signer(cfg), cfg.effective_audit_origin)

    typer.echo(run(go()), nl=False)


@audit_app.command("prove")
def prove(
    seq: Annotated[int, typer.Argument(help="The event's sequence number.")],
    size: Annotated[int | None, typer.Option(help="Tree size (default: now).")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Print the inclusion proof of an event as JSON (hashes in base64)."""

    async def go() -> dict[str, object]:
        async with db_session(settings()) as session:
            tree = await _tree(session, tenant)
            n = size or await tlog.tree_size(session, tree)
            proof = await tlog.inclusion_proof(session, tree, seq - 1, n)
            leaf = await tlog.leaf_hash_at(session, tree, seq - 1)
            return {"log": tree, "seq": seq, "leaf_index": seq - 1, "tree_size": n,
                    "leaf_hash": tlog.b64([leaf])[0], "proof": tlog.b64(proof)}  # fmt: skip

    typer.echo(json.dumps(run(go()), indent=1))


@audit_app.command("consistency")
def consistency(
    first: Annotated[int, typer.Argument(help="The older tree size.")],
    second: Annotated[int | None, typer.Argument(help="The newer tree size (default: now).")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Print the consistency proof between two tree sizes as JSON."""

    async def go() -> dict[str, object]:
        async with db_session(settings()) as session:
            tree = await _tree(session, tenant)
            n = second or await tlog.tree_size(session, tree)
            proof = await tlog.consistency_proof(session, tree, first, n)
            return {"log": tree, "first": first, "second": n, "proof": tlog.b64(proof)}

    typer.echo(json.dumps(run(go()), indent=1))


@audit_app.command("export")
def export_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (JSON lines).")],
    tenant: TenantOpt = None,
) -> None:
    """Export a whole log for offline verification."""

    async def go() -> int:
        count = -1
        async with db_session(settings()) as session:
            tree = await _tree(session, tenant)
            with output.open("w", encoding="utf-8") as fh:
                async for line in tlog.export(session, tree):
                    fh.write(line)
                    count += 1
        return count

    console.print(f"exported {run(go())} events to {output}")


def verify_export(path: Path, checkpoints: list[str], verifiers: list[Verifier]) -> tlog.LogCheck:
    """Check an exported log against signed checkpoints, offline."""
    with path.open(encoding="utf-8") as fh:
        header = json.loads(fh.readline() or "{}")
        if "log" not in header:
            raise InvalidInput(f"{path} is not an audit export")
        cps = [Checkpoint.open(note, verifiers) for note in checkpoints]
        tree = str(header["log"])
        for cp in cps:
            if not cp.origin.endswith(f"/audit/{tree}"):
                raise InvalidInput(f"checkpoint {cp.origin} is not of log {tree}")
        return tlog.check_leaves(tree, (json.loads(line) for line in fh if line.strip()), cps)


@audit_app.command("verify")
def verify_cmd(
    export: Annotated[Path, typer.Argument(help="An export from `gongyun audit export` or the API.")],
    checkpoint: Annotated[
        list[Path], typer.Option("--checkpoint", "-c", help="Signed checkpoint file; repeatable.")
    ],
    key: KeyOpt = None,
) -> None:
    """Verify a whole exported log offline against signed checkpoints (exit 1 if it fails)."""
    result = verify_export(export, [p.read_text() for p in checkpoint], _verifiers(key))
    if result.ok:
        console.print(f"[green]ok[/]: {result.size} events, root {result.root}", highlight=False)
        return
    for problem in result.problems:
        console.print(f"[red]FAIL[/]: {problem}", highlight=False)
    raise typer.Exit(1)


@audit_app.command("prove-check")
def prove_check(
    proof: Annotated[Path, typer.Argument(help="JSON from `gongyun audit prove` or the API.")],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", "-c", help="Signed checkpoint of the proof's size.")
    ],
    key: KeyOpt = None,
) -> None:
    """Check an inclusion proof against a signed checkpoint, offline."""
    data = json.loads(proof.read_text())
    cp = Checkpoint.open(checkpoint.read_text(), _verifiers(key))
    if cp.size != data["tree_size"]:
        raise InvalidInput(f"the proof is for size {data['tree_size']}, the checkpoint for {cp.size}")
    leaf, path = tlog.unb64([data["leaf_hash"]])[0], tlog.unb64(data["proof"])
    verify_inclusion(data["leaf_index"], cp.size, leaf, path, cp.root)
    console.print(f"[green]ok[/]: event {data['seq']} is in the log of {cp.size}")


@audit_app.command("witness")
def witness_cmd(
    state: Annotated[Path, typer.Argument(help="The witness's state directory.")],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="A signed checkpoint file.")
    ] = None,
    proof: Annotated[
        Path | None, typer.Option("--proof", help="Consistency proof JSON from the size seen.")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="Fetch checkpoint and proof from this Gongyun URL.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="GONGYUN_API_KEY", help="API key for --server.")
    ] = None,
    log: Annotated[
        str | None, typer.Option(help="'platform' for the platform's log (with --server).")
    ] = None,
    key: KeyOpt = None,
) -> None:
    """Accept a new checkpoint only if it is consistent with every one this witness saw (exit 1 if not)."""
    witness = Witness(state, _verifiers(key))
    try:
        if server is not None:
            cp = _witness_remote(witness, server, api_key, log)
        elif checkpoint is not None:
            hashes = tlog.unb64(json.loads(proof.read_text())["proof"]) if proof else None
            cp = witness.observe(checkpoint.read_text(), hashes)
        else:
            raise InvalidInput("give --checkpoint or --server")
    except (GongyunError, ProofError) as exc:
        console.print(f"[red]REFUSED[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"[green]accepted[/]: {cp.origin} size {cp.size}", highlight=False)


def _witness_remote(witness: Witness, server: str, api_key: str | None, log: str | None) -> Checkpoint:
    import httpx

    headers = {"X-API-Key": api_key} if api_key else {}
    params = {"log": log} if log else {}
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as client:
        resp = client.get("/api/v1/audit/checkpoint", params=params)
        resp.raise_for_status()
        note = resp.text
        cp = Checkpoint.parse(note[: note.rindex("\n\n") + 1])
        seen = witness.latest(cp.origin)
        hashes = None
        if seen is not None and cp.size > seen.size:
            got = client.get(
                "/api/v1/audit/proof/consistency", params={**params, "first": seen.size, "second": cp.size}
            )
            got.raise_for_status()
            hashes = tlog.unb64(got.json()["proof"])
        return witness.observe(note, hashes)


@audit_app.command("publish")
def publish_cmd() -> None:
    """Sign every log's checkpoint now and publish them to the `audit_publish` targets."""

    async def go() -> dict[str, str]:
        cfg = settings()
        async with db_session(cfg) as session:
            return await publish(session, cfg)

    notes = run(go())
    console.print(
        f"signed {len(notes)} checkpoints; published to {', '.join(settings().audit_publish) or 'nowhere'}"
    )
