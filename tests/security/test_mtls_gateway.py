"""Gateways and simulators with certificates enrolled by the CLI, through Mosquitto's generated config."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import ssl
from pathlib import Path

import aiomqtt
import pytest
from typer.testing import CliRunner

from gongyun.cli.main import _add_room_commands, app
from gongyun.core.types import Sample, TagRef
from gongyun.edge.config import load_config
from gongyun.edge.drivers.sparkplug import SparkplugDriver
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.security.pki.ca import PLATFORM_IDENTITY, CertificateAuthority, make_csr, new_key
from gongyun.security.pki.mosquitto import write_config
from gongyun.sim.packaging import PackagingServer
from gongyun.sim.pump import PumpServer
from gongyun.sparkplug.tls import client_context
from tests.edge.conftest import PROFILES, wait_for
from tests.security.test_device_identity import MOSQUITTO, _broker, _creds, _free_port

GROUP = "Plant"


def _enrol(node: str, out: Path) -> None:
    result = CliRunner().invoke(app, ["pki", "device", "ta", GROUP, node, "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{GROUP}.{node}" in result.output and (out / "client.key").stat().st_mode & 0o077 == 0


def _tls(out: Path) -> ssl.SSLContext:
    return client_context(out / "ca.pem", out / "client.crt", out / "client.key")


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="no mosquitto binary")
async def test_gateway_and_simulator_publish_with_their_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_room_commands()
    monkeypatch.setenv("GONGYUN_DATA_DIR", str(tmp_path / "var"))
    _enrol("gw1", tmp_path / "gw1")
    _enrol("PackLine1", tmp_path / "pack")
    ca = CertificateAuthority(tmp_path / "var" / "pki")  # the CA the CLI used
    pkey = new_key()
    pcert, pkeyf = _creds(tmp_path, "platform", *_issued(ca, pkey), pkey)
    platform_tls = client_context(tmp_path / "var" / "pki" / "root.crt", pcert, pkeyf)
    port = _free_port()
    conf = write_config(ca, tmp_path / "broker", port, run_as=getpass.getuser())
    (tmp_path / "edge.toml").write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "buffer.db"}"\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "mqtts://127.0.0.1:{port}"\ngroup = "{GROUP}"\n'
        'primary_host = "host-t"\n'
        'ca_file = "gw1/ca.pem"\ncert_file = "gw1/client.crt"\nkey_file = "gw1/client.key"\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {{pump}}\n'
    )
    pump = PumpServer(port=_free_port())
    edge = tmp_path / "edge.toml"
    edge.write_text(edge.read_text().replace("{pump}", str(pump.port)))
    config, profiles = load_config(edge)
    with _broker(conf, port):
        got: list[Sample] = []
        topics: set[str] = set()
        receiver = UplinkReceiver(
            ("127.0.0.1", port), GROUP, lambda _k, s: got.extend(s), host_id="host-t", tls=platform_tls
        )
        rx = asyncio.create_task(receiver.run())
        await pump.start()
        gateway = Gateway(config, profiles)
        pack = PackagingServer(mqtt_port=port, group=GROUP, interval=0.1, tls=_tls(tmp_path / "pack"))
        # a second line that presents PackLine1's certificate: the broker drops all it publishes
        impostor = PackagingServer(
            mqtt_port=port, group=GROUP, node="PackLine2", interval=0.1, tls=_tls(tmp_path / "pack")
        )
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="watch", tls_context=platform_tls
            ) as watch:
                await watch.subscribe(f"spBv1.0/{GROUP}/#", qos=1)

                async def collect() -> None:
                    async for message in watch.messages:
                        topics.add(str(message.topic))

                watcher = asyncio.create_task(collect())
                await gateway.start()
                await pack.start()
                await impostor.start()
                await wait_for(
                    lambda: sum(1 for s in got if s.tag == TagRef("pump1", "flow")) >= 3, timeout=20
                )
                await wait_for(lambda: gateway.buffer.acked > 0)  # the confirmation reached the gateway
                await wait_for(lambda: f"spBv1.0/{GROUP}/DDATA/PackLine1/Filler" in topics)
                await asyncio.sleep(0.5)
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            for stop in (impostor.stop, pack.stop, gateway.stop, pump.stop):
                await stop()
            rx.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rx
    assert f"spBv1.0/{GROUP}/NBIRTH/gw1" in topics
    assert not [t for t in topics if "PackLine2" in t], "a node published under another node's certificate"


def _issued(ca: CertificateAuthority, key: object) -> tuple[bytes, bytes]:
    plat = ca.issue_platform(make_csr(key, PLATFORM_IDENTITY))  # type: ignore[arg-type]
    return plat.cert_pem, plat.chain_pem


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="no mosquitto binary")
async def test_sparkplug_device_driver_reads_through_mutual_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway's Sparkplug device (``[[devices]]`` with ca_file/cert_file/key_file) over mutual TLS."""
    _add_room_commands()
    monkeypatch.setenv("GONGYUN_DATA_DIR", str(tmp_path / "var"))
    _enrol("PackLine1", tmp_path / "pack")
    ca = CertificateAuthority(tmp_path / "var" / "pki")
    pkey = new_key()
    pcert, pkeyf = _creds(tmp_path, "platform", *_issued(ca, pkey), pkey)
    root = tmp_path / "var" / "pki" / "root.crt"
    port = _free_port()
    conf = write_config(ca, tmp_path / "broker", port, run_as=getpass.getuser())
    device = (
        f'[[devices]]\nname = "pack1"\nprofile = "{PROFILES / "packaging.toml"}"\n'
        f'broker = "127.0.0.1:{port}"\ngroup = "{GROUP}"\nnode = "PackLine1"\nsparkplug_device = "Filler"\n'
        f'host_id = "host-mtls"\nreconnect_delay = 0.2\nca_file = "{root}"\n'
    )
    edge = tmp_path / "edge.toml"
    edge.write_text(device + f'cert_file = "{pcert.name}"\nkey_file = "{pkeyf.name}"\n')  # relative paths
    config, profiles = load_config(edge)
    assert config.devices[0].cert_file == pcert  # resolved beside edge.toml
    bare = tmp_path / "bare.toml"
    bare.write_text(device.replace('"pack1"', '"pack2"'))  # the broker's CA, but no client certificate
    bare_config, bare_profiles = load_config(bare)
    got: list[Sample] = []
    refused: list[Sample] = []
    with _broker(conf, port):
        driver = SparkplugDriver(config.devices[0], profiles["pack1"], got.extend)
        driver.host.rebirth_holdoff = 0.0
        without = SparkplugDriver(bare_config.devices[0], bare_profiles["pack2"], refused.extend)
        tasks = [asyncio.create_task(driver.run()), asyncio.create_task(without.run())]
        pack = PackagingServer(mqtt_port=port, group=GROUP, interval=0.1, tls=_tls(tmp_path / "pack"))
        try:
            await asyncio.wait_for(driver.host.connected.wait(), 10)
            await pack.start()
            await wait_for(lambda: {s.tag.tag for s in got} >= {"count", "state"}, timeout=20)
            await wait_for(lambda: without.status.last_error is not None, timeout=10)
            assert not without.host.connected.is_set() and not refused
        finally:
            await pack.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert all(s.tag.device == "pack1" for s in got)
