"""The embedded broker (amqtt) with client certificates: identity, revocation, per-device ACL over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from gongyun.config import load_settings
from gongyun.edge.broker import EmbeddedBroker, start_embedded_broker
from gongyun.edge.broker_tls import BrokerTls, platform_tls
from gongyun.security.pki.ca import (
    PLATFORM_IDENTITY,
    CertificateAuthority,
    Issued,
    enrol_files,
    make_csr,
    new_key,
)
from gongyun.sparkplug.tls import client_context
from tests.services import free_port

Creds = tuple[Path, Path]
_PROBES = itertools.count()


def _write(tmp: Path, name: str, issued: Issued, key: object) -> Creds:
    cert, keyf = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(issued.cert_pem + issued.chain_pem)
    keyf.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, keyf


def _device(ca: CertificateAuthority, tmp: Path, tenant: str, group: str, node: str) -> tuple[Creds, int]:
    key = new_key()
    issued = ca.enrol(ca.enrolment_token(tenant, group, node), make_csr(key, "whoever"))
    return _write(tmp, f"{group}-{node}", issued, key), issued.serial


class Pki:
    """A CA, the broker's files, and client certificates."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = CertificateAuthority(tmp / "pki")
        self.n1, _ = _device(self.ca, tmp, "ta", "GA", "n1")
        self.n2, self.n2_serial = _device(self.ca, tmp, "ta", "GA", "n2")
        self.m1, _ = _device(self.ca, tmp, "tb", "GB", "m1")  # another tenant (its own intermediate)
        pkey = new_key()
        self.platform = _write(
            tmp, "platform", self.ca.issue_platform(make_csr(pkey, PLATFORM_IDENTITY)), pkey
        )
        other = CertificateAuthority(tmp / "other")  # a CA the broker does not trust, same identity
        fkey = new_key()
        self.forged = _write(
            tmp, "forged", other.enrol(other.enrolment_token("ta", "GA", "n1"), make_csr(fkey, "x")), fkey
        )
        cert, key = self.ca.issue_server(["127.0.0.1"])
        files = {
            "ca.pem": self.ca.bundle(),
            "crl.pem": self.ca.crl_pem(),
            "server.crt": cert,
            "server.key": key,
        }
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        self.tls = BrokerTls(tmp / "ca.pem", tmp / "server.crt", tmp / "server.key", tmp / "crl.pem")

    def revoke(self, serial: int) -> None:
        """Revoke and rewrite the CRL file the running broker reads."""
        self.ca.revoke(serial)
        self.tls.crl_file.write_bytes(self.ca.crl_pem())  # type: ignore[union-attr]

    def context(self, creds: Creds | None) -> ssl.SSLContext:
        """A client TLS context trusting the platform's root, presenting ``creds``."""
        ctx = ssl.create_default_context(cafile=str(self.tmp / "pki" / "root.crt"))
        if creds is not None:
            ctx.load_cert_chain(str(creds[0]), str(creds[1]))
        return ctx


@pytest.fixture
async def mtls(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedBroker, Pki]]:
    pki = Pki(tmp_path)
    broker = EmbeddedBroker("127.0.0.1", free_port(), tls=pki.tls)
    await broker.start()
    try:
        yield broker, pki
    finally:
        await broker.stop()


def _client(broker: EmbeddedBroker, pki: Pki, creds: Creds | None, name: str, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=name,
        tls_context=pki.context(creds),
        **({"timeout": 5} | kw),  # type: ignore[arg-type]
    )


async def _refused(broker: EmbeddedBroker, pki: Pki, creds: Creds | None, **kw: object) -> bool:
    try:
        async with _client(broker, pki, creds, f"probe-{next(_PROBES)}", **kw):
            return False
    except (aiomqtt.MqttError, ssl.SSLError, OSError):
        return True


async def test_certificates_identify_clients_and_the_acl_holds(mtls: tuple[EmbeddedBroker, Pki]) -> None:
    broker, pki = mtls
    got: list[str] = []
    async with _client(broker, pki, pki.platform, "platform") as plat:
        await plat.subscribe("spBv1.0/#", qos=1)
        await plat.subscribe("gongyun/confirm/#", qos=1)

        async def collect() -> None:
            async for message in plat.messages:
                got.append(str(message.topic))

        reader = asyncio.create_task(collect())
        try:
            async with _client(broker, pki, pki.n1, "n1", username=PLATFORM_IDENTITY) as n1:
                for topic in (
                    "spBv1.0/GA/NDATA/n1",  # its own: delivered
                    "spBv1.0/GA/DDATA/n1/filler",  # its own device: delivered
                    "spBv1.0/GA/NDATA/n2",  # another node of its group
                    "spBv1.0/GA/NCMD/n1",  # a command, even to itself
                    "spBv1.0/GA/DCMD/n2/d",
                    "spBv1.0/STATE/gongyun",  # the host's state
                    "gongyun/confirm/GA/n1",  # a delivery confirmation
                ):
                    await n1.publish(topic, b"x", qos=1)
                granted = await n1.subscribe("spBv1.0/#", qos=1)
                assert [getattr(g, "value", g) for g in granted] == [0x80]  # reading everything: refused
                await n1.subscribe("spBv1.0/GA/NCMD/n1", qos=1)
                async with _client(broker, pki, pki.m1, "m1") as m1:
                    await m1.publish("spBv1.0/GA/NDATA/n1", b"x", qos=1)  # tenant A's group
                    await m1.publish("spBv1.0/GB/NDATA/m1", b"x", qos=1)  # its own
                await plat.publish("spBv1.0/GA/NCMD/n1", b"cmd", qos=1)  # the platform commands
                message = await asyncio.wait_for(anext(aiter(n1.messages)), 5)
                assert str(message.topic) == "spBv1.0/GA/NCMD/n1"
            await asyncio.sleep(0.5)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    assert sorted(got) == [
        "spBv1.0/GA/DDATA/n1/filler",
        "spBv1.0/GA/NCMD/n1",
        "spBv1.0/GA/NDATA/n1",
        "spBv1.0/GB/NDATA/m1",
    ]


async def test_revoked_foreign_and_missing_certificates_are_refused(mtls: tuple[EmbeddedBroker, Pki]) -> None:
    broker, pki = mtls
    assert not await _refused(broker, pki, pki.n2)  # the control: n2 connects before its revocation
    pki.revoke(pki.n2_serial)
    assert await _refused(broker, pki, pki.n2), "revoked certificate accepted"
    # TLS 1.3: the broker rejects the certificate after the client's handshake, so no CONNACK comes
    assert await _refused(broker, pki, pki.forged, timeout=1), "certificate of a foreign CA accepted"
    assert await _refused(broker, pki, None), "client without a certificate accepted"
    assert await _refused(broker, pki, pki.n1, clean_session=False), "resumable session accepted"
    will = aiomqtt.Will("spBv1.0/GA/NCMD/n2", b"x")
    assert await _refused(broker, pki, pki.n1, will=will), "a will on a command topic accepted"
    assert not await _refused(broker, pki, pki.n1, will=aiomqtt.Will("spBv1.0/GA/NDEATH/n1", b"x"))
    plain = aiomqtt.Client("127.0.0.1", broker.port, identifier="plain", timeout=1)
    with pytest.raises(aiomqtt.MqttError):  # no TLS at all
        async with plain:
            pass


async def test_mqtts_url_starts_the_embedded_broker_with_the_platforms_ca(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "var", mqtt_url=f"mqtts://127.0.0.1:{port}", mqtt_embedded="on"
    )
    broker = await start_embedded_broker(settings)
    assert broker is not None and broker.tls is not None
    try:
        ca = CertificateAuthority(tmp_path / "var" / "pki")
        issued = enrol_files(ca, "ta", "GA", "n1", tmp_path / "n1")
        device = client_context(
            tmp_path / "n1" / "ca.pem", tmp_path / "n1" / "client.crt", tmp_path / "n1" / "client.key"
        )
        platform = platform_tls(settings)
        assert platform is not None
        async with aiomqtt.Client("127.0.0.1", port, identifier="n1", tls_context=device, timeout=5) as n1:
            await n1.subscribe("spBv1.0/GA/NCMD/n1", qos=1)
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="plat", tls_context=platform, timeout=5
            ) as p:
                await p.publish("spBv1.0/GA/NCMD/n1", b"cmd", qos=1)
            message = await asyncio.wait_for(anext(aiter(n1.messages)), 5)
            assert message.payload == b"cmd"
        ca.revoke(issued.serial)  # rewrites the CRL file the running broker reads
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, identifier="n1b", tls_context=device, timeout=5):
                pass
        with pytest.raises(aiomqtt.MqttError):  # plain MQTT on the TLS port
            async with aiomqtt.Client("127.0.0.1", port, identifier="plain", timeout=1):
                pass
    finally:
        await broker.stop()
