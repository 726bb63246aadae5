"""Remote (NCMD) commands over a real broker: tenant binding, role ceiling, HMAC signature, replay."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gongyun.core.types import Sample
from gongyun.edge.broker import EmbeddedBroker
from gongyun.edge.commands import CommandPolicy, command_signature, sign_command
from gongyun.edge.config import load_config
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.security.rbac import Role
from gongyun.sim.pump import PumpServer
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port, require_service

SECRET = "a-shared-command-secret"


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    if request.param == "mosquitto":
        require_service("mqtt")
        yield 1883
        return
    b = EmbeddedBroker("127.0.0.1", free_port())
    await b.start()
    try:
        yield b.port
    finally:
        await b.stop()


async def send_signed(
    receiver: UplinkReceiver, key: str, device: str, tag: str, value: int, props: dict[str, str]
) -> dict[str, object]:
    """``receiver.command`` with signed properties: it must keep the signed ``command_id``."""
    return await receiver.command(key, device, tag, value, props)


def edge_toml(tmp_path: Path, group: str, broker_port: int, pump_port: int) -> Path:
    """A gateway ``gw1`` with signed commands for tenant acme, its buffer in ``tmp_path``."""
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "buffer.db"}"\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:{broker_port}"\ngroup = "{group}"\n'
        f'primary_host = "host-{group}"\n\n'
        f'[commands]\ntenant = "acme"\nsecret = "{SECRET}"\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump_port}\n'
    )
    return path


async def test_gateway_admits_only_signed_commands_of_its_tenant_and_roles(
    tmp_path: Path, pump: PumpServer, broker_port: int
) -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    config, profiles = load_config(edge_toml(tmp_path, group, broker_port, pump.port))
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", broker_port), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    gateway = Gateway(config, profiles)
    await gateway.start()
    key = f"{group}/gw1"
    who = {"requested_by": "alice", "role": "operator", "tenant": "acme", "reason": "slow down"}

    async def send(value: int, props: dict[str, str]) -> dict[str, object]:
        return await send_signed(receiver, key, "pump1", "speed_setpoint", value, props)

    try:
        await wait_for(lambda: any(s.tag.tag == "speed_setpoint" for s in got), timeout=20)
        ok = await send(900, sign_command(SECRET, key, "pump1", "speed_setpoint", 900, who))
        assert ok["status"] == "confirmed" and pump.model.speed_setpoint == 900
        assert ok["tenant_id"] == "acme" and ok["role"] == "operator"
        refusals = {
            "the command is not signed": (1100, who),
            "signature is wrong": (
                1100,
                sign_command("not-the-secret!!", key, "pump1", "speed_setpoint", 1100, who),
            ),
            "tampered": (1500, sign_command(SECRET, key, "pump1", "speed_setpoint", 1100, who)),
            "this gateway serves 'acme'": (
                1100,
                sign_command(SECRET, key, "pump1", "speed_setpoint", 1100, {**who, "tenant": "other"}),
            ),
            "role tenant-admin may not command devices on this gateway": (
                1100,
                sign_command(SECRET, key, "pump1", "speed_setpoint", 1100, {**who, "role": "tenant-admin"}),
            ),
        }
        for why, (value, props) in refusals.items():
            result = await send(value, props)
            assert result["status"] == "refused" and result["code"] == "command_refused", why
            expected = "signature is wrong" if why == "tampered" else why
            assert expected in str(result["detail"]), (why, result["detail"])
        signed = sign_command(SECRET, key, "pump1", "speed_setpoint", 1000, who)
        assert (await send(1000, signed))["status"] == "confirmed"
        replay = await send(1000, signed)
        assert replay["status"] == "refused" and "replayed" in str(replay["detail"])
        relabelled = {**sign_command(SECRET, key, "pump1", "speed_setpoint", 1000, who), "command_id": "x"}
        moved = await send(1000, relabelled)  # the result would be reported under another id
        assert moved["status"] == "refused" and "signature is wrong" in str(moved["detail"])
        assert pump.model.speed_setpoint == 1000  # nothing refused reached the PLC
        journal = (tmp_path / "buffer.commands.jsonl").read_text()
        assert journal.count('"refused"') == 7 and SECRET not in journal
        assert "tenant-admin" in journal  # the claimed role is recorded
    finally:
        await gateway.stop()
        rx.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rx


def test_policy_without_a_secret_still_binds_tenant_and_roles() -> None:
    policy = CommandPolicy("g/gw1", "acme", [Role.operator])
    base = {"requested_by": "bob", "role": "operator", "tenant": "acme"}
    request, why = policy.admit("pump1", "speed_setpoint", 900, base)
    assert why is None and request.role is Role.operator and request.tenant_id == "acme"
    for props, reason in (
        ({**base, "role": "engineer"}, "role engineer may not command"),
        ({**base, "role": "root"}, "role 'root' is unknown"),
        ({"requested_by": "bob", "tenant": "acme"}, "role None is unknown"),
        ({**base, "tenant": "globex"}, "this gateway serves 'acme'"),
        ({"requested_by": "bob", "role": "operator"}, "for tenant None"),
    ):
        assert reason in str(policy.admit("pump1", "speed_setpoint", 900, props)[1])
    signed = CommandPolicy("g/gw1", "acme", [Role.operator], secret=SECRET, max_age_s=1)
    props = sign_command(SECRET, "g/gw1", "pump1", "speed_setpoint", 900, base)
    assert signed.admit("pump1", "speed_setpoint", 900.0, props)[1] is None  # retyped number still matches
    assert "signature is wrong" in str(signed.admit("pump1", "speed_setpoint", 901, props)[1])
    other_gateway = sign_command(SECRET, "g/gw2", "pump1", "speed_setpoint", 900, base)
    assert "signature is wrong" in str(signed.admit("pump1", "speed_setpoint", 900, other_gateway)[1])
    stale = {**props, "issued_at": "0", "nonce": "n1"}
    stale["signature"] = command_signature(SECRET, "g/gw1", "pump1", "speed_setpoint", 900, stale)
    assert "issued" in str(signed.admit("pump1", "speed_setpoint", 900, stale)[1])
    assert SECRET not in repr(signed)


async def test_a_signed_command_is_not_run_again_after_a_gateway_restart(
    tmp_path: Path, pump: PumpServer, broker_port: int
) -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    config, profiles = load_config(edge_toml(tmp_path, group, broker_port, pump.port))
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", broker_port), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    key = f"{group}/gw1"
    who = {"requested_by": "alice", "role": "operator", "tenant": "acme"}
    signed: dict[str, str] = {}
    try:
        for attempt in ("first", "after restart"):
            got.clear()
            gateway = Gateway(config, profiles)
            await gateway.start()
            try:
                await wait_for(lambda: any(s.tag.tag == "speed_setpoint" for s in got), timeout=20)
                signed = signed or sign_command(SECRET, key, "pump1", "speed_setpoint", 700, who)
                result = await send_signed(receiver, key, "pump1", "speed_setpoint", 700, signed)
                if attempt == "first":
                    assert result["status"] == "confirmed" and pump.model.speed_setpoint == 700
                    pump.model.speed_setpoint = 1200  # changed on site since
                else:
                    assert result["status"] == "refused" and "replayed" in str(result["detail"])
                    assert pump.model.speed_setpoint == 1200
            finally:
                await gateway.stop()
    finally:
        rx.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rx


def test_nonces_survive_a_restart_and_a_clock_step(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    path = tmp_path / "buffer.nonces.json"
    who = {"requested_by": "bob", "role": "operator", "tenant": "acme"}

    def policy() -> CommandPolicy:
        return CommandPolicy(
            "g/gw1", "acme", [Role.operator], SECRET, max_age_s=60, nonce_path=path, clock=lambda: now[0]
        )

    def signed_at(at: float, value: int = 900) -> dict[str, str]:
        props = {**who, "issued_at": str(int(at * 1000)), "nonce": uuid.uuid4().hex, "command_id": "c1"}
        props["signature"] = command_signature(SECRET, "g/gw1", "pump1", "speed_setpoint", value, props)
        return props

    def why(p: CommandPolicy, props: dict[str, str]) -> str | None:
        return p.admit("pump1", "speed_setpoint", 900, props)[1]

    before_start = signed_at(now[0] - 5)
    first = policy()
    assert "before the gateway's replay window" in str(why(first, before_start))  # no nonce file yet
    now[0] += 1
    a = signed_at(now[0])
    assert why(first, a) is None
    assert why(first, a) == "the command was replayed"
    restarted = policy()
    assert why(restarted, a) == "the command was replayed"  # the nonce was kept on disk
    now[0] += 61
    b = signed_at(now[0])
    assert why(restarted, b) is None  # a's nonce is forgotten now, by its issue time...
    now[0] -= 61  # ...and the clock is stepped back: a is "fresh" again
    assert "before the gateway's replay window" in str(why(restarted, a))
    assert "before the gateway's replay window" in str(why(policy(), a))  # also after a restart
    c = signed_at(now[0] + 30)  # a new command is still taken
    assert why(policy(), c) is None
    path.write_text("not json")
    assert "replay window" in str(why(policy(), signed_at(now[0] - 1)))  # unreadable: start afresh
