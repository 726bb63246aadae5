"""CNC cell as an OPC UA server (asyncua), fed by the :class:`Cnc` model.

Namespace ``urn:gongyun:sim:cnc``; nodes are string ids under ``Objects/CNC``:
``CNC.SpindleSpeed`` (rpm), ``CNC.SpindleLoad`` (%), ``CNC.AxisTemp.X|Y|Z`` (degC),
``CNC.PartCount``, ``CNC.State``, ``CNC.ToolWear`` (%) and the writable ``CNC.SpindleSetpoint``.
Analog variables carry an ``EngineeringUnits`` (EUInformation, UNECE codes) property.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server

from gongyun.core.tasks import cancel_and_wait
from gongyun.sim.physics import Cnc

log = logging.getLogger(__name__)
NS_URI = "urn:gongyun:sim:cnc"
APP_URI = "urn:gongyun:sim:cnc:server"
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"


def eu_information(code: str, display: str, description: str) -> ua.EUInformation:
    """EUInformation for a UNECE common code (UnitId packs the code's ASCII letters)."""
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(
        NamespaceUri=UNECE,
        UnitId=unit_id,
        DisplayName=ua.LocalizedText(display),
        Description=ua.LocalizedText(description),
    )


# name, variant type, unit (code, display, description) or None, writable
NODES: list[tuple[str, ua.VariantType, tuple[str, str, str] | None, bool]] = [
    ("SpindleSpeed", ua.VariantType.Double, ("RPM", "rpm", "revolutions per minute"), False),
    ("SpindleLoad", ua.VariantType.Double, ("P1", "%", "percent"), False),
    ("AxisTemp.X", ua.VariantType.Double, ("CEL", "°C", "degree Celsius"), False),
    ("AxisTemp.Y", ua.VariantType.Double, ("CEL", "°C", "degree Celsius"), False),
    ("AxisTemp.Z", ua.VariantType.Double, ("CEL", "°C", "degree Celsius"), False),
    ("PartCount", ua.VariantType.UInt32, None, False),
    ("State", ua.VariantType.String, None, False),
    ("ToolWear", ua.VariantType.Double, ("P1", "%", "percent"), False),
    ("SpindleSetpoint", ua.VariantType.Double, ("RPM", "rpm", "revolutions per minute"), True),
]


class _Users:
    """Username/password check for the secured endpoint."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


@dataclass
class CncServer:
    """A running OPC UA CNC cell; with ``cert``/``key`` it only offers Basic256Sha256 + username login."""

    port: int = 4840
    hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    seed: int = 2
    time_scale: float = 1.0
    interval: float = 0.1
    cert: Path | None = None
    key: Path | None = None
    users: dict[str, str] = field(default_factory=dict)
    model: Cnc = field(init=False)
    server: Server | None = None
    nodes: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.model = Cnc(seed=self.seed)

    @property
    def url(self) -> str:
        """Endpoint URL on the first host."""
        host = self.hosts[0]
        return f"opc.tcp://{f'[{host}]' if ':' in host else host}:{self.port}/gongyun/cnc"

    async def start(self) -> None:
        """Build the address space and listen."""
        secure = self.cert is not None and self.key is not None
        server = Server(user_manager=_Users(self.users)) if secure else Server()  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.url)
        # asyncio's create_server accepts a list of hosts: one listener per loopback address
        server.socket_address = (list(self.hosts), self.port)  # type: ignore[assignment]
        server.set_server_name("Gongyun CNC cell")
        await server.set_application_uri(APP_URI)
        if secure:
            assert self.cert is not None and self.key is not None
            await server.load_certificate(str(self.cert))
            await server.load_private_key(str(self.key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NS_URI)
        cnc = await server.nodes.objects.add_object(f"ns={idx};s=CNC", ua.QualifiedName("CNC", idx))
        for name, vtype, unit, writable in NODES:
            node = await cnc.add_variable(
                f"ns={idx};s=CNC.{name}", ua.QualifiedName(name, idx), ua.Variant(self._value(name), vtype)
            )
            if unit:
                await node.add_property(idx, "EngineeringUnits", eu_information(*unit))
            if writable:
                await node.set_writable()
            self.nodes[name] = node
        await server.start()
        self.server = server
        self._task = asyncio.create_task(self._run())
        log.info("CNC cell (OPC UA) at %s on %s", self.url, ", ".join(self.hosts))

    def _value(self, name: str) -> Any:
        m = self.model
        if name.startswith("AxisTemp."):
            return m.axis_temp[name[-1]]
        return {
            "SpindleSpeed": m.spindle_speed,
            "SpindleLoad": m.spindle_load,
            "PartCount": m.part_count,
            "State": m.state,
            "ToolWear": m.tool_wear,
            "SpindleSetpoint": m.spindle_setpoint,
        }[name]

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            setpoint = await self.nodes["SpindleSetpoint"].read_value()
            if 0 <= float(setpoint) <= 24000:
                self.model.spindle_setpoint = float(setpoint)
            self.model.step((now - last) * self.time_scale)
            last = now
            for name, vtype, _unit, writable in NODES:
                if not writable:
                    await self.nodes[name].write_value(ua.Variant(self._value(name), vtype))

    async def stop(self) -> None:
        """Stop updating and close the server."""
        await cancel_and_wait(self._task)
        if self.server:
            await self.server.stop()
            self.server = None
