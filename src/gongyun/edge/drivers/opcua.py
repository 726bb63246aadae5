"""OPC UA driver (asyncua): browse, subscriptions with sampling interval and deadband, polling
fallback, EUInformation units, Basic256Sha256 with certificates and username login, and its own
reconnect-with-resubscription loop (the client's supervisor only reports the loss)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gongyun import __version__
from gongyun.core.types import Quality, Sample
from gongyun.edge.drivers.base import Driver, DriverManifest, Value
from gongyun.edge.drivers.opcua_trust import pinned_certificate, server_certificates
from gongyun.edge.errors import DeviceError
from gongyun.edge.profiles import Tag

log = logging.getLogger(__name__)
_ERRORS = (OSError, asyncio.TimeoutError, UaError, ConnectionError)


def quality_of(status: ua.StatusCode | None) -> Quality:
    """Map an OPC UA status code to good / uncertain / bad (top two bits)."""
    if status is None:
        return Quality.good
    severity = status.value >> 30
    return Quality.good if severity == 0 else Quality.uncertain if severity == 1 else Quality.bad


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def app_uri_of(cert_path: str) -> str | None:
    """The application URI in a certificate's subjectAltName (asyncua requires it to match)."""
    raw = open(cert_path, "rb").read()  # noqa: SIM115 - small file, read once at connect
    cert = (
        x509.load_der_x509_certificate(raw)
        if not raw.startswith(b"-----")
        else x509.load_pem_x509_certificate(raw)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def resolve_node(text: str, namespaces: list[str]) -> str:
    """Turn ``nsu=<uri>;s=...`` into ``ns=<index>;s=...`` using the server's namespace array."""
    if not text.startswith("nsu="):
        return ua.NodeId.from_string(text).to_string()
    uri, sep, rest = text[4:].partition(";")
    if not sep or uri not in namespaces:
        raise DeviceError(f"namespace {uri!r} is not on the server", kind="config")
    return ua.NodeId.from_string(f"ns={namespaces.index(uri)};{rest}").to_string()


class _Handler:
    """Subscription callback: data changes become samples."""

    def __init__(self, driver: OpcUaDriver) -> None:
        self.driver = driver

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        tag = self.driver.by_node.get(node.nodeid.to_string())
        if tag is None:
            return
        dv = data.monitored_item.Value
        self.driver.emit([self.driver.to_sample(tag, dv)])

    def status_change_notification(self, status: Any) -> None:
        self.driver.lost.set()


class OpcUaDriver(Driver):
    """Subscribes to (or polls) the nodes of an OPC UA server according to its profile."""

    protocol = "opcua"
    manifest = DriverManifest(
        name="opcua",
        version=__version__,
        protocol="opcua",
        library="asyncua==2.1.0",
        reads="node values, engineering units, browse tree",
        writes="node values",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client: Client | None = None
        self.by_node: dict[str, Tag] = {}
        self.node_ids: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.lost = asyncio.Event()
        self.subscribed = 0
        self.polled: list[Tag] = []

    def to_sample(self, tag: Tag, dv: Any) -> Sample:
        """Sample from a DataValue: value (scaled), source timestamp, quality from the status code."""
        quality = quality_of(dv.StatusCode)
        value = dv.Value.Value if dv.Value is not None and quality is not Quality.bad else None
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (tag.scale != 1 or tag.offset != 0)
        ):
            value = float(value) * tag.scale + tag.offset
        elif value is not None and not isinstance(value, int | float | str | bool):
            value = str(value)
        ts = dv.SourceTimestamp or dv.ServerTimestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return self.sample(tag, value, ts, quality)

    async def _check_server_ca(self, url: str) -> None:
        """Refuse a server whose certificate no CA in ``server_ca`` issued (no blind trust)."""
        assert self.config.server_ca is not None
        cas = x509.load_pem_x509_certificates(self.config.server_ca.read_bytes())
        for der in await server_certificates(url, self.config.timeout * 4):
            cert = x509.load_der_x509_certificate(der)
            if not any(_issued_by(cert, ca) for ca in cas):
                raise DeviceError(
                    f"{url}: the server certificate {cert.subject.rfc4514_string()} is not from the CA"
                )

    async def _connect(self) -> Client:
        c = self.config
        assert c.url is not None
        server_certificate = c.server_certificate
        if c.server_ca is not None:
            await self._check_server_ca(c.url)
        elif c.security == "Basic256Sha256" and server_certificate is None:
            if not c.trust_on_first_use:
                raise DeviceError(
                    f"{c.url}: nothing to check the server's certificate against: set server_ca (the "
                    "platform CA), server_certificate, or trust_on_first_use = true"
                )
            server_certificate = await pinned_certificate(c)
        client = Client(c.url, timeout=c.timeout * 4, watchdog_intervall=max(0.5, c.timeout))
        if c.security == "Basic256Sha256":
            assert c.certificate is not None and c.private_key is not None
            uri = app_uri_of(str(c.certificate))
            if uri:
                client.application_uri = uri
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(c.certificate),
                private_key=str(c.private_key),
                server_certificate=str(server_certificate) if server_certificate else None,
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        if c.username:
            client.set_user(c.username)
            client.set_password(c.password or "")

        async def on_lost(exc: Exception) -> None:
            self.lost.set()

        client.connection_lost_callback = on_lost
        await client.connect(auto_reconnect=False)
        return client

    async def _read_units(self, client: Client) -> None:
        for key, tag in self.by_node.items():
            try:  # the property's browse name may be in namespace 0 or the server's own
                for prop in await client.get_node(key).get_properties():
                    if (await prop.read_browse_name()).Name == "EngineeringUnits":
                        info = await prop.read_value()
                        if isinstance(info, ua.EUInformation):
                            self.units[tag.name] = info.DisplayName.Text or ""
            except _ERRORS as exc:
                log.debug("%s: no units for %s: %s", self.device, tag.name, exc)

    async def _subscribe(self, client: Client) -> None:
        self.polled = [t for t in self.profile.tags if t.mode == "poll"]
        wanted = [t for t in self.profile.tags if t.mode == "subscribe"]
        if not wanted:
            return
        period = self.config.subscription_interval * 1000
        try:
            sub = await client.create_subscription(period, _Handler(self))
            requests = []
            for handle, tag in enumerate(wanted, start=1):
                mfilter = None
                if tag.deadband > 0:
                    mfilter = ua.DataChangeFilter(
                        Trigger=ua.DataChangeTrigger.StatusValue,
                        DeadbandType=ua.DeadbandType.Absolute,
                        DeadbandValue=tag.deadband / abs(tag.scale),
                    )
                params = ua.MonitoringParameters(
                    ClientHandle=handle,
                    SamplingInterval=(tag.poll_interval or self.profile.profile.poll_interval) * 1000,
                    Filter=mfilter,
                    QueueSize=10,
                    DiscardOldest=True,
                )
                node_id = ua.NodeId.from_string(self.node_ids[tag.name])
                item = ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
                requests.append(
                    ua.MonitoredItemCreateRequest(
                        ItemToMonitor=item,
                        MonitoringMode=ua.MonitoringMode.Reporting,
                        RequestedParameters=params,
                    )
                )
            results = await sub.create_monitored_items(requests)
        except _ERRORS as exc:
            log.warning("%s: subscriptions unavailable (%s); polling instead", self.device, exc)
            self.status.error("subscribe", str(exc))
            self.polled.extend(wanted)
            return
        for tag, result in zip(wanted, results, strict=True):
            if isinstance(result, ua.StatusCode):
                log.warning("%s: cannot monitor %s (%s); polling it", self.device, tag.node, result)
                self.status.error("subscribe", f"{tag.name}: {result}")
                self.polled.append(tag)
            else:
                self.subscribed += 1

    async def _poll(self, client: Client) -> None:
        interval = self.profile.profile.poll_interval
        while not self.lost.is_set():
            if self.polled:
                nodes = [client.get_node(self.node_ids[t.name]) for t in self.polled]
                values = await client.read_attributes(nodes, AttributeIds.Value)
                self.emit([self.to_sample(tag, dv) for tag, dv in zip(self.polled, values, strict=True)])
                self.status.good()
            await asyncio.sleep(interval)

    async def session(self) -> None:
        """One connected session: subscribe, poll, wait for loss."""
        self.lost.clear()
        client = await self._connect()
        self.client = client
        try:
            namespaces = await client.get_namespace_array()
            self.node_ids = {t.name: resolve_node(t.node or "", namespaces) for t in self.profile.tags}
            self.by_node = {self.node_ids[t.name]: t for t in self.profile.tags}
            self.status.connected = True
            self.status.reconnects += 1
            self.backoff.reset()
            self.status.good()
            await self._read_units(client)
            await self._subscribe(client)
            poller: asyncio.Task[Any] = asyncio.create_task(self._poll(client))
            waiter: asyncio.Task[Any] = asyncio.create_task(self.lost.wait())
            try:
                await asyncio.wait({poller, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (poller, waiter):
                    task.cancel()
                await asyncio.gather(poller, waiter, return_exceptions=True)
            if poller.done() and not poller.cancelled() and poller.exception() is not None:
                raise ConnectionError(f"polling failed: {poller.exception()}")
            raise ConnectionError("connection to the server lost")
        finally:
            self.client = None
            self.status.connected = False
            try:
                await asyncio.wait_for(client.disconnect(), 2)
            except (*_ERRORS, Exception):
                log.debug("disconnect after loss failed", exc_info=True)

    async def run(self) -> None:
        """Connect and resubscribe forever, marking every tag bad while disconnected."""
        while True:
            try:
                await self.session()
            except (*_ERRORS, DeviceError) as exc:
                self.status.error("connect", str(exc) or type(exc).__name__)
                log.warning("%s: %s; reconnecting", self.device, exc)
            self.mark_bad(list(self.profile.tags))
            await asyncio.sleep(self.backoff.next())

    def _tag_client(self) -> Client:
        if self.client is None:
            raise DeviceError(f"{self.device} is not connected", kind="connect")
        return self.client

    async def read(self, tag: Tag) -> Value:
        """Read one node now."""
        try:
            client = self._tag_client()
            dv = (await client.read_attributes([client.get_node(self.node_ids[tag.name])]))[0]
        except _ERRORS as exc:
            raise DeviceError(f"read failed: {exc}", kind="io") from exc
        sample = self.to_sample(tag, dv)
        if sample.quality is Quality.bad:
            raise DeviceError(f"bad status {dv.StatusCode}", kind="status")
        return sample.value

    async def write(self, tag: Tag, value: Value) -> None:
        """Write one node, keeping the node's data type."""
        client = self._tag_client()
        node = client.get_node(self.node_ids[tag.name])
        raw: Any = value
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (tag.scale != 1 or tag.offset != 0)
        ):
            raw = (float(value) - tag.offset) / tag.scale
        try:
            vtype = await node.read_data_type_as_variant_type()
            await node.write_value(ua.DataValue(ua.Variant(raw, vtype)))
        except _ERRORS as exc:
            raise DeviceError(f"write failed: {exc}", kind="io") from exc

    async def browse(self, root: str = "i=85", depth: int = 3) -> list[dict[str, str]]:
        """List variables below ``root`` (node id, browse path, data type) for writing profiles."""
        client = self._tag_client()
        out: list[dict[str, str]] = []

        async def walk(node: Any, path: str, level: int) -> None:
            for child in await node.get_children():
                name = (await child.read_browse_name()).Name
                node_class = await child.read_node_class()
                child_path = f"{path}/{name}" if path else name
                if node_class == ua.NodeClass.Variable:
                    vtype = await child.read_data_type_as_variant_type()
                    out.append({"node": child.nodeid.to_string(), "path": child_path, "type": vtype.name})
                if level < depth and node_class == ua.NodeClass.Object:
                    await walk(child, child_path, level + 1)

        await walk(client.get_node(root), "", 1)
        return out

    async def close(self) -> None:
        """Disconnect."""
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(), 2)
            except (*_ERRORS, Exception):
                log.debug("disconnect failed", exc_info=True)
