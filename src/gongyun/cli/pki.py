"""``gongyun pki ...``: device certificates and the broker's mutual-TLS configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gongyun.cli.common import console, settings
from gongyun.security.pki.ca import CertificateAuthority, enrol_files
from gongyun.security.pki.mosquitto import write_config

pki_app = typer.Typer(help="Device identity: the platform's CA.", no_args_is_help=True)


def _ca() -> CertificateAuthority:
    return CertificateAuthority(settings().ensure_data_dir() / "pki")


@pki_app.command("token")
def token(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    group: Annotated[str, typer.Argument(help="Sparkplug group id.")],
    node: Annotated[str, typer.Argument(help="Edge node id.")],
    ttl: Annotated[int, typer.Option(help="Seconds the token stays valid.")] = 86400,
) -> None:
    """Issue a one-time enrolment token for one edge node of a tenant."""
    typer.echo(_ca().enrolment_token(tenant, group, node, ttl))


@pki_app.command("enrol")
def enrol(
    token_value: Annotated[str, typer.Argument(metavar="TOKEN")],
    csr: Annotated[Path, typer.Argument(help="PEM certificate signing request.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write certificate + chain.")],
    identifier: Annotated[str, typer.Option(help="The device's identifier (SAN URI).")] = "",
) -> None:
    """Issue a device certificate for a CSR against a one-time token."""
    issued = _ca().enrol(token_value, csr.read_bytes(), identifier)
    out.write_bytes(issued.cert_pem + issued.chain_pem)
    console.print(f"issued {issued.identity} serial {issued.serial}, valid until {issued.not_after:%Y-%m-%d}")


@pki_app.command("device")
def device(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    group: Annotated[str, typer.Argument(help="Sparkplug group id.")],
    node: Annotated[str, typer.Argument(help="Edge node id (a gateway's [uplink] node or [gateway] id).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the key, certificate and CA.")],
    identifier: Annotated[str, typer.Option(help="The device's identifier (SAN URI).")] = "",
) -> None:
    """Enrol an edge node here: write its key, certificate and the CA for its MQTT uplink."""
    issued = enrol_files(_ca(), tenant, group, node, out, identifier)
    console.print(
        f"issued {issued.identity} serial {issued.serial}, valid until {issued.not_after:%Y-%m-%d}\n"
        f"已签发 {issued.identity}，序列号 {issued.serial}\n"
        "[uplink] (edge.toml):\n"
        f'ca_file = "{out / "ca.pem"}"\ncert_file = "{out / "client.crt"}"\nkey_file = "{out / "client.key"}"'
    )


@pki_app.command("revoke")
def revoke(serial: Annotated[int, typer.Argument(help="Certificate serial number.")]) -> None:
    """Revoke a certificate (regenerate the broker config or CRL afterwards)."""
    _ca().revoke(serial)
    console.print(f"revoked {serial}")


@pki_app.command("crl")
def crl(out: Annotated[Path, typer.Option("--out", "-o")]) -> None:
    """Write the current CRLs (one PEM file, as Mosquitto reads)."""
    out.write_bytes(_ca().crl_pem())


@pki_app.command("mosquitto-config")
def mosquitto_config(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the config and its files.")],
    port: Annotated[int, typer.Option(help="TLS listener port.")] = 8883,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    host: Annotated[list[str] | None, typer.Option(help="Names in the server certificate.")] = None,
) -> None:
    """Generate mosquitto.conf with require_certificate, use_identity_as_username, CRL and per-device ACL."""
    conf = write_config(_ca(), out, port, host, bind)
    console.print(f"wrote {conf}")
