"""The per-device MQTT ACL, one rule set for the generated Mosquitto ACL and the embedded broker.

An edge node ``<group>.<node>`` (its certificate's CN) may publish only its own Sparkplug topics
(births, data and deaths of the node and its devices) and read only its own commands, the hosts'
STATE and the platform's delivery confirmations to it (``gongyun/confirm/<group>/<node>``); the
platform's identity may publish and read everything, commands included.
Anyone else may do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from gongyun.security.pki.ca import PLATFORM_IDENTITY

NS = "spBv1.0"


@dataclass(frozen=True)
class Rules:
    """Topic patterns (MQTT wildcards) an identity may publish to and read from."""

    write: tuple[str, ...]
    read: tuple[str, ...]


def rules_for(identity: str) -> Rules:
    """The rules of one certificate identity (CN); none for a name that is not an edge node."""
    if identity == PLATFORM_IDENTITY:
        return Rules(write=("#",), read=("#",))
    group, dot, node = identity.partition(".")
    if not (dot and group and node) or any(c in identity for c in "/+#"):
        return Rules(write=(), read=())
    write = tuple(f"{NS}/{group}/{kind}/{node}" for kind in ("NBIRTH", "NDATA", "NDEATH")) + tuple(
        f"{NS}/{group}/{kind}/{node}/+" for kind in ("DBIRTH", "DDATA", "DDEATH")
    )
    read = (
        f"{NS}/{group}/NCMD/{node}",
        f"{NS}/{group}/DCMD/{node}/+",
        f"{NS}/STATE/+",
        f"gongyun/confirm/{group}/{node}",
    )
    return Rules(write=write, read=read)


def _covers(pattern: list[str], topic: list[str]) -> bool:
    """Whether every topic that ``topic`` (a name or a filter) matches also matches ``pattern``."""
    for i, level in enumerate(pattern):
        if level == "#":
            return True
        if i >= len(topic):
            return False
        if topic[i] == "#":
            return False  # the filter reaches deeper than this pattern allows
        if level != "+" and level != topic[i]:
            return False
        if level != "+" and topic[i] == "+":
            return False
    return len(topic) == len(pattern)


def allowed(patterns: tuple[str, ...], topic: str) -> bool:
    """Whether ``topic`` (a topic name, or a subscription filter) lies within one of ``patterns``."""
    levels = topic.split("/")
    return any(_covers(p.split("/"), levels) for p in patterns)
