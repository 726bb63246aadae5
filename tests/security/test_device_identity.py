"""Device identity: CA, enrolment, revocation, and a real Mosquitto with the generated mutual-TLS config."""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gongyun.platform import Platform
from gongyun.security.pki.ca import (
    PLATFORM_IDENTITY,
    CertificateAuthority,
    EnrolmentRefused,
    make_csr,
    new_key,
)
from gongyun.security.pki.mosquitto import acl_text, write_config
from tests.apphelp import admin_headers

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _creds(tmp: Path, name: str, issued_pem: bytes, chain: bytes, key: object) -> tuple[Path, Path]:
    cert, keyf = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(issued_pem + chain)
    keyf.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, keyf


def _device(
    ca: CertificateAuthority, tmp: Path, tenant: str, group: str, node: str
) -> tuple[Path, Path, int]:
    key = new_key()
    token = ca.enrolment_token(tenant, group, node)
    issued = ca.enrol(token, make_csr(key, "anything"))
    cert, keyf = _creds(tmp, f"{group}-{node}", issued.cert_pem, issued.chain_pem, key)
    return cert, keyf, issued.serial


def test_enrolment_binds_the_identity_and_tokens_are_one_time(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    key = new_key()
    token = ca.enrolment_token("ta", "GA", "n1")
    issued = ca.enrol(token, make_csr(key, "I-claim-to-be-the-platform"))
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert cert.subject.rfc4514_string() == "CN=GA.n1"  # the token decides the identity, not the CSR
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:gongyun:ta:GA.n1"]
    with pytest.raises(EnrolmentRefused):
        ca.enrol(token, make_csr(new_key(), "x"))  # spent
    renewed = ca.renew(issued.cert_pem, make_csr(key, "x"))
    assert renewed.identity == "GA.n1" and renewed.serial != issued.serial
    other = CertificateAuthority(tmp_path / "other")
    foreign = other.enrol(other.enrolment_token("ta", "GA", "n1"), make_csr(key, "x"))
    with pytest.raises(EnrolmentRefused):
        ca.renew(foreign.cert_pem, make_csr(key, "x"))
    ca.revoke(issued.serial)
    crls = [x509.load_pem_x509_crl(b"-----BEGIN" + p) for p in ca.crl_pem().split(b"-----BEGIN")[1:]]
    assert any(c.get_revoked_certificate_by_serial_number(issued.serial) for c in crls)
    assert "topic write spBv1.0/GA/NDATA/n1" in acl_text(ca.identities())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _broker(conf: Path, port: int) -> Iterator[None]:
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode() if proc.stdout else "mosquitto exited")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(5)


def _client(port: int, ca_file: Path, cert: Path | None, key: Path | None, name: str):  # type: ignore[no-untyped-def]
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    c.tls_set(ca_certs=str(ca_file), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
    c.connect("127.0.0.1", port, keepalive=10)
    return c


def _refused(port: int, ca_file: Path, cert: Path | None, key: Path | None) -> bool:
    try:
        c = _client(port, ca_file, cert, key, f"x{time.monotonic_ns()}")
    except (ssl.SSLError, OSError):
        return True
    # TLS may complete and the broker drop the connection right after: wait for CONNACK
    ok = threading.Event()
    c.on_connect = lambda *a: ok.set() if a[3] == 0 else None
    c.loop_start()
    got = ok.wait(2)
    c.loop_stop()
    c.disconnect()
    return not got


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="no mosquitto binary")
def test_mosquitto_with_generated_config_enforces_identity_and_acl(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    n1 = _device(ca, tmp_path, "ta", "GA", "n1")
    _device(ca, tmp_path, "ta", "GA", "n2")
    revoked = _device(ca, tmp_path, "ta", "GA", "n3")
    m1 = _device(ca, tmp_path, "tb", "GB", "m1")  # another tenant's device (its own intermediate)
    ca.revoke(revoked[2])
    pkey = new_key()
    plat = ca.issue_platform(make_csr(pkey, PLATFORM_IDENTITY))
    pcert, pkeyf = _creds(tmp_path, "platform", plat.cert_pem, plat.chain_pem, pkey)
    other = CertificateAuthority(tmp_path / "other")  # a CA the broker does not trust
    fkey = new_key()
    forged = other.enrol(other.enrolment_token("ta", "GA", "n1"), make_csr(fkey, "x"))
    fcert, fkeyf = _creds(tmp_path, "forged", forged.cert_pem, forged.chain_pem, fkey)
    port = _free_port()
    conf = write_config(ca, tmp_path / "broker", port, run_as=getpass.getuser())
    ca_file = tmp_path / "pki" / "root.crt"
    with _broker(conf, port):
        received: list[str] = []
        sub = _client(port, ca_file, pcert, pkeyf, "platform")
        sub.on_message = lambda _c, _u, msg: received.append(msg.topic)
        sub.subscribe("spBv1.0/#", qos=1)
        sub.loop_start()
        time.sleep(0.3)
        dev = _client(port, ca_file, n1[0], n1[1], "n1")
        dev.loop_start()
        for topic in (
            "spBv1.0/GA/NDATA/n1",
            "spBv1.0/GA/NDATA/n2",
            "spBv1.0/GA/NCMD/n1",
            "spBv1.0/GA/DCMD/n1/d",
        ):
            dev.publish(topic, b"x", qos=1).wait_for_publish(3)
        b = _client(port, ca_file, m1[0], m1[1], "m1")
        b.loop_start()
        b.publish("spBv1.0/GA/NDATA/n1", b"x", qos=1).wait_for_publish(3)  # tenant A's group
        b.publish("spBv1.0/GB/NDATA/m1", b"x", qos=1).wait_for_publish(3)  # its own
        sub.publish("spBv1.0/GA/NCMD/n1", b"cmd", qos=1).wait_for_publish(3)  # the platform may command
        time.sleep(1.0)
        for c in (dev, b, sub):
            c.loop_stop()
            c.disconnect()
        assert sorted(received) == ["spBv1.0/GA/NCMD/n1", "spBv1.0/GA/NDATA/n1", "spBv1.0/GB/NDATA/m1"]
        assert _refused(port, ca_file, revoked[0], revoked[1]), "revoked certificate accepted"
        assert _refused(port, ca_file, fcert, fkeyf), "certificate of a foreign CA accepted"
        assert _refused(port, ca_file, None, None), "client without a certificate accepted"


async def test_enrolment_over_the_api(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    admin = await admin_headers(client)
    token = await client.post("/api/v1/pki/tokens", json={"group": "GA", "node": "n1"}, headers=admin)
    assert token.status_code == 201, token.text
    body = {"token": token.json()["token"], "csr": make_csr(new_key(), "whatever").decode()}
    enrolled = await client.post("/api/v1/pki/enrol", json=body)  # no login: the token is the credential
    assert enrolled.status_code == 200 and enrolled.json()["identity"] == "GA.n1", enrolled.text
    cert = x509.load_pem_x509_certificate(enrolled.json()["certificate"].encode())
    assert cert.subject.rfc4514_string() == "CN=GA.n1"
    again = await client.post("/api/v1/pki/enrol", json=body)
    assert again.status_code == 403 and again.json()["code"] == "pki_enrolment_refused"
    serial = enrolled.json()["serial"]
    revoked = await client.post(f"/api/v1/pki/certificates/{serial}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    crls = (await client.get("/api/v1/pki/crl")).text.encode()
    parsed = [x509.load_pem_x509_crl(b"-----BEGIN" + p) for p in crls.split(b"-----BEGIN")[1:]]
    assert any(c.get_revoked_certificate_by_serial_number(int(serial)) for c in parsed)
    events = (await client.get("/api/v1/audit", params={"limit": 20}, headers=admin)).json()
    assert {"pki.token", "pki.enrol", "pki.revoke"} <= {e["action"] for e in events}
