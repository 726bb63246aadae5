"""Sparkplug B topics (``spBv1.0/<group>/<type>/<node>[/<device>]``) and the QoS of each message type."""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "spBv1.0"
KINDS = frozenset({"NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD"})
# Sparkplug 3.0: births, data, device deaths and commands go at QoS 0 (never retained); the NDEATH
# is the MQTT will of the session and goes at QoS 1, as does the host's retained STATE.
QOS = {kind: 0 for kind in KINDS} | {"NDEATH": 1}
STATE_QOS = 1


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed ``spBv1.0/group/TYPE/edge[/device]`` topic."""

    group: str
    kind: str
    node: str
    device: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.device}" if self.device else ""
        return f"{NAMESPACE}/{self.group}/{self.kind}/{self.node}{tail}"


def parse_topic(topic: str) -> Topic | None:
    """Parse a Sparkplug B topic; None when it is not one (STATE topics included)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in KINDS:
        return None
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


def state_topic(host_id: str) -> str:
    """The topic on which a host application announces its STATE (Sparkplug 3.0)."""
    return f"{NAMESPACE}/STATE/{host_id}"
