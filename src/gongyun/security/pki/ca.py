"""The platform's certificate authority: a root, one intermediate per tenant, device certificates.

Devices and gateways enrol with a CSR and a one-time token an admin issued for one Sparkplug
group and node of the tenant. The certificate's subject CN is the device's MQTT identity
(``<group>.<node>``, what Mosquitto's ``use_identity_as_username`` makes the username) and its
SAN URI binds it to the device's identifier. Certificates are renewed by a new CSR before they
expire and revoked into a CRL per intermediate (one PEM file with every CRL, as Mosquitto reads).
State lives in a directory: keys readable by the owner only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gongyun.errors import InvalidInput, NotFound, PermissionDenied

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLATFORM_IDENTITY = "gongyun-platform"
DAY = dt.timedelta(days=1)


class EnrolmentRefused(PermissionDenied):
    """An enrolment token is unknown, used, expired, or for another device."""

    code = "pki_enrolment_refused"
    title = "Enrolment refused"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (a private key)."""
    _write_private(path, data)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return _pem_key(key)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def new_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A PEM CSR (what a device sends to enrol)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def identity(group: str, node: str) -> str:
    """The MQTT identity (certificate CN, broker username) of a Sparkplug edge node."""
    for part in (group, node):
        if not _NAME.match(part):
            raise InvalidInput(f"{part!r} is not a group or node name (letters, digits, _ and -)")
    return f"{group}.{node}"


@dataclass(frozen=True)
class Issued:
    """A certificate the CA issued."""

    serial: int
    tenant_id: str
    identity: str
    not_after: dt.datetime
    cert_pem: bytes
    chain_pem: bytes  # the tenant's intermediate, then the root


class CertificateAuthority:
    """A file-backed CA: ``root``, ``tenants/<id>``, issued certificates, revocations, tokens."""

    def __init__(self, directory: Path, name: str = "Gongyun") -> None:
        self.dir = directory
        self.name = name
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not (self.dir / "root.crt").exists():
            self._make_root()

    # state -----------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"issued": {}, "revoked": {}, "tokens": {}}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.dir / "state.json.tmp"
        _write_private(tmp, json.dumps(state, indent=1).encode())
        tmp.replace(self.dir / "state.json")

    # authorities -----------------------------------------------------------------------------
    def _make_root(self) -> None:
        key = new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} Root CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - DAY)
            .not_valid_after(_now() + 3650 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.dir / "root.key", _pem_key(key))
        (self.dir / "root.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @property
    def root_pem(self) -> bytes:
        """The root certificate (PEM)."""
        return (self.dir / "root.crt").read_bytes()

    def _root(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return x509.load_pem_x509_certificate(self.root_pem), _load_key(self.dir / "root.key")

    def intermediate(self, tenant_id: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The tenant's intermediate CA (made on first use)."""
        if not _NAME.match(tenant_id):
            raise InvalidInput("not a tenant id")
        crt, key_path = self.dir / "tenants" / f"{tenant_id}.crt", self.dir / "tenants" / f"{tenant_id}.key"
        if not crt.exists():
            root, root_key = self._root()
            key = new_key()
            cert = (
                x509.CertificateBuilder()
                .subject_name(
                    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} tenant {tenant_id}")])
                )
                .issuer_name(root.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(_now() - DAY)
                .not_valid_after(_now() + 1825 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
                )
                .sign(root_key, hashes.SHA256())
            )
            _write_private(key_path, _pem_key(key))
            crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return x509.load_pem_x509_certificate(crt.read_bytes()), _load_key(key_path)

    def tenants(self) -> list[str]:
        """Tenants with an intermediate."""
        return (
            sorted(p.stem for p in (self.dir / "tenants").glob("*.crt"))
            if (self.dir / "tenants").exists()
            else []
        )

    def bundle(self) -> bytes:
        """Root and every intermediate (the broker's ``cafile``)."""
        parts = [self.root_pem]
        parts += [(self.dir / "tenants" / f"{t}.crt").read_bytes() for t in self.tenants()]
        return b"".join(parts)

    # enrolment -------------------------------------------------------------------------------
    def enrolment_token(self, tenant_id: str, group: str, node: str, ttl_s: int = 86400) -> str:
        """A one-time token that lets one device enrol as ``group.node`` of the tenant."""
        ident = identity(group, node)
        token = secrets.token_urlsafe(24)
        state = self._state()
        state["tokens"][hashlib.sha256(token.encode()).hexdigest()] = {
            "tenant": tenant_id,
            "identity": ident,
            "expires": (_now() + dt.timedelta(seconds=ttl_s)).isoformat(),
        }
        self._save(state)
        return token

    def enrol(self, token: str, csr_pem: bytes, identifier: str = "", days: int = 90) -> Issued:
        """Issue a certificate for a CSR against a one-time token (which is then spent)."""
        state = self._state()
        entry = state["tokens"].pop(hashlib.sha256(token.encode()).hexdigest(), None)
        self._save(state)  # spent even if what follows fails
        if entry is None or dt.datetime.fromisoformat(entry["expires"]) < _now():
            raise EnrolmentRefused("unknown, used or expired enrolment token")
        return self._issue(entry["tenant"], entry["identity"], csr_pem, identifier, days)

    def issue_platform(self, csr_pem: bytes, days: int = 365) -> Issued:
        """A client certificate for the platform itself (the only identity that may command)."""
        return self._issue("platform", PLATFORM_IDENTITY, csr_pem, "", days)

    def issue_server(self, hostnames: list[str], days: int = 365) -> tuple[bytes, bytes]:
        """A server certificate (and its key) for the broker, signed by the root."""
        root, root_key = self._root()
        key = new_key()
        import ipaddress

        sans: list[x509.GeneralName] = []
        for h in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - DAY)
            .not_valid_after(_now() + days * DAY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def issue_opcua(self, tenant_id: str, name: str, app_uri: str, days: int = 365) -> tuple[bytes, bytes]:
        """An OPC UA application certificate (DER) and its RSA key (PEM), from the tenant's CA.

        RSA 2048 for Basic256Sha256; the application URI and loopback names in subjectAltName and
        the key usages OPC UA requires. Gateways use it as their client certificate; a server's
        certificate from this CA is what the gateway checks servers against (``server_ca``).
        """
        import ipaddress
        import socket

        from cryptography.hazmat.primitives.asymmetric import rsa

        inter, inter_key = self.intermediate(tenant_id)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sans: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(app_uri),
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(inter.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + days * DAY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, True, True, False, False, False, False, False), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(inter_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.DER), key_pem

    def _issue(self, tenant_id: str, ident: str, csr_pem: bytes, identifier: str, days: int) -> Issued:
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise InvalidInput("the CSR's signature does not verify")
        inter, inter_key = self.intermediate(tenant_id)
        uri = identifier or f"urn:gongyun:{tenant_id}:{ident}"
        serial = x509.random_serial_number()
        not_after = _now() + days * DAY
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident)]))
            .issuer_name(inter.subject)
            .public_key(csr.public_key())
            .serial_number(serial)
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(inter_key, hashes.SHA256())
        )
        state = self._state()
        state["issued"][str(serial)] = {
            "tenant": tenant_id,
            "identity": ident,
            "identifier": uri,
            "not_after": not_after.isoformat(),
        }
        self._save(state)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return Issued(
            serial,
            tenant_id,
            ident,
            not_after,
            pem,
            inter.public_bytes(serialization.Encoding.PEM) + self.root_pem,
        )

    def renew(self, cert_pem: bytes, csr_pem: bytes, days: int = 90) -> Issued:
        """A new certificate for the holder of a valid, unrevoked one (same identity and identifier)."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        state = self._state()
        info = state["issued"].get(str(cert.serial_number))
        if info is None or str(cert.serial_number) in state["revoked"]:
            raise EnrolmentRefused("the certificate to renew is unknown or revoked")
        if cert.not_valid_after_utc < _now():
            raise EnrolmentRefused("the certificate expired: enrol again with a new token")
        inter, _ = self.intermediate(info["tenant"])
        try:
            cert.verify_directly_issued_by(inter)
        except (ValueError, TypeError, InvalidSignature):
            raise EnrolmentRefused("the certificate was not issued by this tenant's CA") from None
        return self._issue(info["tenant"], info["identity"], csr_pem, info["identifier"], days)

    def revoke(self, serial: int, tenant_id: str | None = None) -> None:
        """Revoke a certificate (of ``tenant_id`` if given); it appears in the next CRL."""
        state = self._state()
        info = state["issued"].get(str(serial))
        if info is None or (tenant_id is not None and info["tenant"] != tenant_id):
            raise NotFound("no such certificate")
        state["revoked"][str(serial)] = _now().isoformat()
        self._save(state)
        self.write_crl()

    def write_crl(self) -> Path:
        """Write the current CRLs to ``crl.pem`` in the CA's directory (read by the embedded broker)."""
        tmp = self.dir / "crl.pem.tmp"
        tmp.write_bytes(self.crl_pem())
        tmp.replace(self.dir / "crl.pem")
        return self.dir / "crl.pem"

    def crl_pem(self) -> bytes:
        """One CRL per intermediate (and the root's), concatenated: the broker's ``crlfile``."""
        state = self._state()
        out = []
        issuers = [("platform", *self.intermediate("platform"))] if "platform" not in self.tenants() else []
        issuers += [(t, *self.intermediate(t)) for t in self.tenants()]
        root, root_key = self._root()
        issuers.append(("", root, root_key))
        for tenant, cert, key in issuers:
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(cert.subject)
                .last_update(_now() - dt.timedelta(minutes=5))
                .next_update(_now() + 7 * DAY)
            )
            for serial, when in state["revoked"].items():
                if tenant and state["issued"].get(serial, {}).get("tenant") == tenant:
                    builder = builder.add_revoked_certificate(
                        x509.RevokedCertificateBuilder()
                        .serial_number(int(serial))
                        .revocation_date(dt.datetime.fromisoformat(when))
                        .build()
                    )
            out.append(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return b"".join(out)

    def identities(self, tenant_id: str | None = None) -> list[tuple[str, str]]:
        """(tenant, identity) of every unrevoked certificate issued."""
        state = self._state()
        return sorted(
            {
                (i["tenant"], i["identity"])
                for s, i in state["issued"].items()
                if s not in state["revoked"] and (tenant_id is None or i["tenant"] == tenant_id)
            }
        )


def enrol_files(
    ca: CertificateAuthority, tenant_id: str, group: str, node: str, out: Path, identifier: str = ""
) -> Issued:
    """Enrol an edge node with a new key: write ``client.key`` (0600), ``client.crt`` (+chain), ``ca.pem``."""
    key = new_key()
    token = ca.enrolment_token(tenant_id, group, node, 300)
    issued = ca.enrol(token, make_csr(key, identity(group, node)), identifier)
    out.mkdir(parents=True, exist_ok=True)
    write_private(out / "client.key", key_pem(key))
    (out / "client.crt").write_bytes(issued.cert_pem + issued.chain_pem)
    (out / "ca.pem").write_bytes(ca.root_pem)
    return issued
