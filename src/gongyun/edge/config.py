"""The gateway configuration file (``edge.toml``): gateway, buffer, uplink and devices."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from gongyun.edge import tomlloc
from gongyun.edge.profiles import Profile, Protocol, Strict, load_profile, validation_problems
from gongyun.security.rbac import Role


class GatewaySection(Strict):
    """``[gateway]``: identity and the store-and-forward buffer."""

    id: str = Field(default="gateway", pattern=r"^[A-Za-z0-9_\-]+$")
    buffer: Path = Path("var/edge/buffer.db")
    max_buffer_mb: float = Field(default=512.0, gt=0)
    max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    status_interval: float = Field(default=10.0, gt=0)


class UplinkSection(Strict):
    """``[uplink]``: where samples go: Sparkplug B over MQTT, the bus (nats:// or memory://), or nowhere.

    The Sparkplug defaults are the safe ones: a gateway publishes only while the platform's host
    (``gongyun``) is online and keeps every sample until the platform confirms it has stored it;
    without a receiving platform it keeps buffering (up to ``[gateway] max_buffer_mb``/``max_age_s``).
    """

    kind: Literal["mqtt", "bus", "nats", "none"] = "mqtt"
    url: str = "mqtt://127.0.0.1:1883"
    group: str = Field(default="Gongyun", pattern=r"^[^/#+]+$")
    node: str | None = Field(default=None, pattern=r"^[^/#+]+$")
    primary_host: str | None = Field(
        default="gongyun",
        pattern=r"^[^/#+]*$",
        description="publish only while this host's STATE is online (the platform's sparkplug_host_id); "
        '"" publishes whenever connected',
    )
    confirm: bool = Field(
        default=True,
        description="keep samples until the host confirms them (gongyun/confirm); false: drop them once "
        "the broker has them",
    )
    subject: str = Field(default="telemetry", pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_\-]+$")
    deployment_id: str = Field(
        default="gongyun",
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="bus uplink: the platform's deployment_id (namespaces the NATS subjects)",
    )
    batch: int = Field(default=500, ge=1, le=10000)
    ca_file: Path | None = Field(
        default=None,
        description="mqtt uplink: CA bundle (PEM) the broker's certificate must chain to; enables TLS",
    )
    cert_file: Path | None = Field(
        default=None, description="mqtt uplink: the gateway's client certificate (PEM)"
    )
    key_file: Path | None = Field(default=None, description="mqtt uplink: the key of cert_file (PEM)")
    status_interval: float = Field(
        default=2.0, gt=0, le=300, description="bus uplink: status heartbeat (s); 3 missed = gateway offline"
    )

    @field_validator("primary_host")
    @classmethod
    def _no_primary_host(cls, value: str | None) -> str | None:
        return value or None  # TOML has no null: "" opts out of waiting for a host

    @model_validator(mode="after")
    def _tls(self) -> UplinkSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate (cert_file) needs ca_file: it is sent only over TLS")
        if self.url.startswith("mqtts://") and self.ca_file is None:
            raise ValueError(
                "an mqtts:// uplink needs ca_file (the CA bundle the broker's certificate chains to)"
            )
        return self


class CommandsSection(Strict):
    """``[commands]``: which remote (NCMD) commands this gateway accepts from the platform."""

    tenant: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_\-]+$", description="the tenant served; default [uplink] tenant"
    )
    allowed_roles: list[Role] = Field(default_factory=lambda: [Role.operator, Role.engineer])
    secret: SecretStr | None = Field(
        default=None, min_length=16, description="shared HMAC key: when set, unsigned commands are refused"
    )
    max_age_s: float = Field(default=60.0, gt=0, le=3600, description="signed commands older are refused")


class DeviceConfig(Strict):
    """``[[devices]]``: one device instance and how to reach it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    profile: Path
    enabled: bool = True
    # modbus
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout: float = Field(default=1.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    reconnect_delay: float = Field(default=0.5, gt=0)
    reconnect_max: float = Field(default=10.0, gt=0, description="reconnect back-off doubles up to this")
    # opcua
    url: str | None = None
    security: Literal["None", "Basic256Sha256"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    # PEM file of CA certificates (the platform CA's root and intermediates): a server is used
    # only if its certificate was issued by one of them (gongyun.security.pki)
    server_ca: Path | None = None
    # Basic256Sha256 without server_ca or server_certificate: pin the first server certificate seen
    # (journalled beside the certificate, gongyun.edge.drivers.opcua_trust); otherwise refused
    trust_on_first_use: bool = False
    username: str | None = None
    password: str | None = None
    subscription_interval: float = Field(default=0.5, gt=0)
    # mqtt / sparkplug
    broker: str = "127.0.0.1:1883"
    group: str | None = None
    node: str | None = None
    sparkplug_device: str | None = None
    host_id: str | None = None
    # TLS to the broker (mqtt / sparkplug): the CA bundle its certificate chains to, and the
    # gateway's client certificate and key where the broker requires one (mutual TLS)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _security(self) -> DeviceConfig:
        if self.security != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("security Basic256Sha256 needs certificate and private_key")
        if (
            self.security != "None"
            and self.server_ca is None
            and self.server_certificate is None
            and not self.trust_on_first_use
        ):
            raise ValueError(
                "security Basic256Sha256 needs server_ca (the platform CA's certificates) or "
                "server_certificate to check the server, or trust_on_first_use = true"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate (cert_file) needs ca_file: it is sent only over TLS")
        return self


class EdgeConfig(Strict):
    """The whole ``edge.toml``."""

    gateway: GatewaySection = GatewaySection()
    uplink: UplinkSection = UplinkSection()
    commands: CommandsSection = CommandsSection()
    devices: list[DeviceConfig] = Field(default_factory=list)


def load_config(path: str | Path) -> tuple[EdgeConfig, dict[str, Profile]]:
    """Load ``edge.toml`` and every profile it names (paths relative to the file)."""
    file = Path(path)
    data, lines = tomlloc.load(file)
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise tomlloc.invalid(file, lines, validation_problems(exc)) from None
    base = file.parent
    problems: list[tuple[tomlloc.Loc, str]] = []
    names = set()
    for i, device in enumerate(config.devices):
        if device.name in names:
            problems.append((("devices", i, "name"), f"duplicate device name {device.name!r}"))
        names.add(device.name)
    if problems:
        raise tomlloc.invalid(file, lines, problems)
    resolved = []
    profiles: dict[str, Profile] = {}
    for raw in config.devices:
        updates: dict[str, Path] = {}
        for key in (
            "profile",
            "certificate",
            "private_key",
            "server_certificate",
            "server_ca",
            "ca_file",
            "cert_file",
            "key_file",
        ):
            value = getattr(raw, key)
            if value is not None and not value.is_absolute():
                updates[key] = base / value
        device = raw.model_copy(update=updates)
        resolved.append(device)
        profiles[device.name] = load_profile(device.profile)
    buffer = config.gateway.buffer if config.gateway.buffer.is_absolute() else base / config.gateway.buffer
    tls_files = {
        key: base / value
        for key in ("ca_file", "cert_file", "key_file")
        if (value := getattr(config.uplink, key)) is not None and not value.is_absolute()
    }
    config = config.model_copy(
        update={
            "devices": resolved,
            "gateway": config.gateway.model_copy(update={"buffer": buffer}),
            "uplink": config.uplink.model_copy(update=tls_files),
        }
    )
    for i, device in enumerate(config.devices):
        protocol = profiles[device.name].profile.protocol
        if protocol is Protocol.opcua and not device.url:
            problems.append((("devices", i), "an OPC UA device needs url"))
        if protocol is Protocol.modbus and device.port is None:
            problems.append((("devices", i), "a Modbus device needs port"))
        if protocol is Protocol.sparkplug and not (device.group and device.node):
            problems.append((("devices", i), "a Sparkplug device needs group and node"))
    if problems:
        raise tomlloc.invalid(file, lines, problems)
    return config, profiles
