"""OPC UA driver against the CNC simulator: subscriptions, polling, units, security, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gongyun.core.types import Quality, Sample
from gongyun.edge.certs import make_app_cert
from gongyun.edge.config import DeviceConfig
from gongyun.edge.drivers.opcua import OpcUaDriver, quality_of
from gongyun.edge.profiles import load_profile
from gongyun.sim.cnc import APP_URI, CncServer
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port


@contextlib.asynccontextmanager
async def running(cfg: DeviceConfig) -> AsyncIterator[tuple[OpcUaDriver, list[Sample]]]:
    got: list[Sample] = []
    drv = OpcUaDriver(cfg, load_profile(PROFILES / "cnc.toml"), got.extend)
    task = asyncio.create_task(drv.run())
    try:
        yield drv, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drv.close()


def tags(got: list[Sample]) -> set[str]:
    return {s.tag.tag for s in got if s.quality is Quality.good}


async def test_subscribes_polls_and_reads_units(cnc: CncServer) -> None:
    cfg = DeviceConfig(name="cnc1", profile=Path("p"), url=cnc.url, subscription_interval=0.1)
    async with running(cfg) as (drv, got):
        await wait_for(lambda: {"spindle_speed", "part_count", "state", "axis_temp_x"} <= tags(got))
        assert drv.subscribed == 5 and [t.name for t in drv.polled] == ["state"]
        assert drv.units == {
            "spindle_speed": "rpm",
            "spindle_load": "%",
            "axis_temp_x": "°C",
            "spindle_setpoint": "rpm",
        }
        state = [s for s in got if s.tag.tag == "state"][-1]
        assert state.value == "RUNNING" and state.ts.tzinfo is not None
        speeds = [s.value for s in got if s.tag.tag == "spindle_speed"]
        # deadband 1.0 rpm is applied by the server's DataChangeFilter
        assert all(abs(a - b) > 1.0 for a, b in itertools.pairwise(speeds))  # type: ignore[operator]
        await drv.write(drv.profile.tag("spindle_setpoint"), 6000)
        assert await drv.read(drv.profile.tag("spindle_setpoint")) == 6000
        listing = await drv.browse("ns=2;s=CNC", depth=1)
        assert {"node": "ns=2;s=CNC.PartCount", "path": "PartCount", "type": "UInt32"} in listing


async def test_reconnects_and_resubscribes(cnc: CncServer) -> None:
    cfg = DeviceConfig(
        name="cnc1",
        profile=Path("p"),
        url=cnc.url,
        subscription_interval=0.1,
        reconnect_delay=0.2,
        timeout=0.5,
    )
    async with running(cfg) as (drv, got):
        await wait_for(lambda: drv.status.connected and "spindle_load" in tags(got))
        await cnc.stop()
        await wait_for(lambda: not drv.status.connected, timeout=15)
        await wait_for(lambda: got[-1].quality is Quality.bad)
        count = len(got)
        await cnc.start()
        await wait_for(lambda: drv.status.connected and drv.status.reconnects >= 2, timeout=20)
        await wait_for(
            lambda: any(s.tag.tag == "spindle_load" and s.quality is Quality.good for s in got[count:])
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    server_cert, server_key = make_app_cert(d, "server", APP_URI)
    client_cert, client_key = make_app_cert(d, "client", "urn:gongyun:edge:test")
    return {
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


@pytest.fixture
async def secure_cnc(pki: dict[str, Path]) -> AsyncIterator[CncServer]:
    server = CncServer(
        port=free_port(), cert=pki["server_cert"], key=pki["server_key"], users={"operator": "s3cret"}
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def secure_cfg(url: str, pki: dict[str, Path], **kw: Any) -> DeviceConfig:
    return DeviceConfig(
        name="cnc1",
        profile=Path("p"),
        url=url,
        security="Basic256Sha256",
        certificate=pki["client_cert"],
        private_key=pki["client_key"],
        server_certificate=pki["server_cert"],
        subscription_interval=0.1,
        reconnect_delay=0.2,
        **kw,
    )


async def test_basic256sha256_with_username(secure_cnc: CncServer, pki: dict[str, Path]) -> None:
    async with running(secure_cfg(secure_cnc.url, pki, username="operator", password="s3cret")) as (drv, got):
        await wait_for(lambda: {"spindle_speed", "state"} <= tags(got), timeout=20)
        assert drv.status.error_count == 0


async def test_secure_server_rejects_wrong_password_and_plain_clients(
    secure_cnc: CncServer, pki: dict[str, Path]
) -> None:
    async with running(secure_cfg(secure_cnc.url, pki, username="operator", password="wrong")) as (drv, got):
        await wait_for(lambda: drv.status.errors.get("connect", 0) >= 1, timeout=20)
        assert not tags(got) and not drv.status.connected
    plain = DeviceConfig(name="cnc1", profile=Path("p"), url=secure_cnc.url, reconnect_delay=0.2)
    async with running(plain) as (drv, got):
        await wait_for(lambda: drv.status.errors.get("connect", 0) >= 1, timeout=20)
        assert not tags(got)


def test_status_code_quality_mapping() -> None:
    from asyncua import ua

    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) is Quality.good
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) is Quality.uncertain
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)) is Quality.bad


async def test_unknown_node_falls_back_to_polling_and_reads_bad(cnc: CncServer, tmp_path: Path) -> None:
    text = (
        PROFILES / "cnc.toml"
    ).read_text() + '\n[[tags]]\nname = "ghost"\nnode = "ns=2;s=CNC.DoesNotExist"\n'
    (tmp_path / "cnc.toml").write_text(text)
    got: list[Sample] = []
    cfg = DeviceConfig(name="cnc1", profile=Path("p"), url=cnc.url, subscription_interval=0.1)
    drv = OpcUaDriver(cfg, load_profile(tmp_path / "cnc.toml"), got.extend)
    task = asyncio.create_task(drv.run())
    try:
        await wait_for(lambda: any(s.tag.tag == "ghost" for s in got) and "spindle_load" in tags(got))
        assert "ghost" in [t.name for t in drv.polled]
        assert drv.status.errors.get("subscribe") == 1
        ghost = [s for s in got if s.tag.tag == "ghost"]
        assert ghost[0].quality is Quality.bad and ghost[0].value is None
        assert drv.status.connected  # one bad node does not take the device down
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drv.close()


async def test_gateway_uses_a_ca_issued_certificate_and_refuses_servers_the_ca_did_not_sign(
    tmp_path: Path,
) -> None:
    from gongyun.security.pki.ca import CertificateAuthority

    ca = CertificateAuthority(tmp_path / "ca")
    d = tmp_path / "certs"
    d.mkdir()
    for name, uri in (("server", APP_URI), ("client", "urn:gongyun:edge:test")):
        der, key = ca.issue_opcua("ta", name, uri)
        (d / f"{name}.der").write_bytes(der)
        (d / f"{name}.pem").write_bytes(key)
    (d / "ca.pem").write_bytes(ca.bundle())
    rogue_cert, rogue_key = make_app_cert(d, "rogue", APP_URI)  # self-signed, not from the CA
    pki = {"client_cert": d / "client.der", "client_key": d / "client.pem", "server_cert": d / "server.der"}
    for cert, key, accepted in ((d / "server.der", d / "server.pem", True), (rogue_cert, rogue_key, False)):
        server = CncServer(port=free_port(), cert=cert, key=key, users={"operator": "s3cret"})
        await server.start()
        try:
            cfg = secure_cfg(server.url, {**pki, "server_cert": cert}, username="operator", password="s3cret")
            cfg = cfg.model_copy(update={"server_ca": d / "ca.pem", "server_certificate": None})
            async with running(cfg) as (drv, got):
                if accepted:
                    await wait_for(lambda: {"spindle_speed", "state"} <= tags(got), timeout=20)
                else:
                    await wait_for(lambda: drv.status.errors.get("connect", 0) >= 1, timeout=20)
                    assert not tags(got) and not drv.status.connected
            if not accepted:  # control: trusting on first use, the rogue server would have been used
                tofu = cfg.model_copy(update={"server_ca": None, "trust_on_first_use": True})
                async with running(tofu) as (drv, got):
                    await wait_for(lambda: "spindle_speed" in tags(got), timeout=20)
        finally:
            await server.stop()


async def test_no_blind_trust_and_trust_on_first_use_pins_and_journals(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    client_cert, client_key = make_app_cert(d, "client", "urn:gongyun:edge:test")
    first = make_app_cert(tmp_path / "a", "server", APP_URI)
    second = make_app_cert(tmp_path / "b", "server", APP_URI)  # same names, another key
    base: dict[str, Any] = {
        "name": "cnc1",
        "profile": Path("p"),
        "security": "Basic256Sha256",
        "certificate": client_cert,
        "private_key": client_key,
        "username": "operator",
        "password": "s3cret",
        "subscription_interval": 0.1,
        "reconnect_delay": 0.2,
    }
    with pytest.raises(ValueError, match="trust_on_first_use"):
        DeviceConfig(url="opc.tcp://127.0.0.1:1", **base)
    journal = d / "trusted" / "trust.jsonl"
    for (cert, key), expect in ((first, "pinned"), (second, "refused")):
        server = CncServer(port=free_port(), cert=cert, key=key, users={"operator": "s3cret"})
        await server.start()
        try:
            blind = DeviceConfig.model_construct(url=server.url, **base)  # what the validator refuses
            async with running(blind) as (drv, got):
                await wait_for(lambda: drv.status.errors.get("connect", 0) >= 1, timeout=20)
                assert not tags(got) and (d / "trusted" / "cnc1.der").exists() == (expect == "refused")
            tofu = DeviceConfig(url=server.url, trust_on_first_use=True, **base)
            async with running(tofu) as (drv, got):
                if expect == "pinned":
                    await wait_for(lambda: "spindle_speed" in tags(got), timeout=20)
                else:  # the certificate differs from the pinned one
                    await wait_for(lambda: drv.status.errors.get("connect", 0) >= 1, timeout=20)
                    assert not tags(got)
        finally:
            await server.stop()
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        assert records[-1]["action"] == expect and records[-1]["device"] == "cnc1"
    assert (d / "trusted" / "cnc1.der").read_bytes() == first[0].read_bytes()
