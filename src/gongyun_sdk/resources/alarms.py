"""Alarms (ISA-18.2 states, operator actions, history, live transitions) and alarm rules."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gongyun_sdk._ops import (
    M,
    Op,
    Pages,
    Resource,
    as_is,
    body,
    call,
    call_no_content,
    operation,
    paginated,
    query,
    streaming,
)
from gongyun_sdk.sse import StreamOp
from gongyun_sdk.types import Alarm, AlarmEvent, AlarmRule, AlarmTransition


def _older_events(op: Op[Any], page: list[AlarmEvent]) -> Op[Any] | None:
    """The next page: the events after the last of this one (``before`` its id)."""
    if not page:
        return None
    rest = [(k, v) for k, v in op.params or [] if k != "before"]
    return call("GET", op.path, params=[*rest, ("before", page[-1]["id"])])


class Alarms(Resource[M]):
    """The tenant's alarms.

    Operator actions (``ack``, ``shelve``, ``unshelve``) answer with the alarm once the alarm
    engine applied them, or, when it has not within ``wait_s``, with ``{"command_id",
    "status": "pending", "href"}``: poll ``command(command_id)`` then.
    """

    @operation
    def list(self, *, active: bool = False) -> Op[list[Alarm]]:
        """Every alarm with its state (only non-normal ones with ``active``), highest priority first."""
        return call("GET", "alarms", params=query(active=active))

    @operation
    def ack(self, rule_id: str, *, wait_s: float | None = None) -> Op[dict[str, Any]]:
        """Acknowledge the alarm of a rule."""
        return call("POST", f"alarms/{rule_id}/ack", params=query(wait_s=wait_s))

    @operation
    def shelve(self, rule_id: str, duration_s: float, *, wait_s: float | None = None) -> Op[dict[str, Any]]:
        """Hide the alarm for ``duration_s`` seconds."""
        return call(
            "POST",
            f"alarms/{rule_id}/shelve",
            params=query(wait_s=wait_s),
            json={"duration_s": duration_s},
        )

    @operation
    def unshelve(self, rule_id: str, *, wait_s: float | None = None) -> Op[dict[str, Any]]:
        """Bring a shelved alarm back."""
        return call("POST", f"alarms/{rule_id}/unshelve", params=query(wait_s=wait_s))

    @operation
    def command(self, command_id: str) -> Op[dict[str, Any]]:
        """An operator action and its outcome (``status`` pending, applied or rejected)."""
        return call("GET", f"alarms/commands/{command_id}")

    @operation
    def history(
        self, *, rule_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> Op[builtins.list[AlarmEvent]]:
        """State transitions, newest first (of one rule, since a time, at most ``limit``)."""
        return call("GET", "alarms/history", params=query(rule_id=rule_id, since=since, limit=limit))

    @paginated
    def events(
        self, *, rule_id: str | None = None, since: datetime | None = None, page_size: int = 500
    ) -> Pages[AlarmEvent]:
        """Every transition, newest first (of one rule, since a time), fetched in pages."""
        first = call("GET", "alarms/history", params=query(rule_id=rule_id, since=since, limit=page_size))
        return Pages(first, as_is, _older_events)

    @streaming
    def stream(self) -> StreamOp[AlarmTransition]:
        """Every transition of the tenant's alarms as it happens."""
        return StreamOp("alarms/stream", [], "alarm", as_is)

    @operation
    def notifiers(self) -> Op[builtins.list[dict[str, Any]]]:
        """Webhook and e-mail notification targets (passwords hidden)."""
        return call("GET", "alarms/notifiers")

    @operation
    def add_notifier(self, name: str, config: Mapping[str, Any]) -> Op[dict[str, Any]]:
        """Add a target: ``{"kind": "webhook", "url": ...}`` or ``{"kind": "email", ...}``."""
        return call("POST", "alarms/notifiers", json={"name": name, "config": dict(config)})

    @operation
    def remove_notifier(self, notifier_id: str) -> Op[None]:
        """Remove a notification target."""
        return call_no_content("DELETE", f"alarms/notifiers/{notifier_id}")


class Rules(Resource[M]):
    """Alarm rules: ``threshold``, ``rate``, ``expression`` or ``stale`` (``kind`` selects)."""

    @operation
    def list(self) -> Op[list[AlarmRule]]:
        """The tenant's rules (``valid`` False: stored under older rules, skipped by the engine)."""
        return call("GET", "alarms/rules")

    @operation
    def create(self, rule: Mapping[str, Any] | None = None, /, **members: Any) -> Op[AlarmRule]:
        """Create a rule from a document and/or members, e.g. ``kind="threshold", tag=..., limit=...``."""
        return call("POST", "alarms/rules", json=body(**{**(rule or {}), **members}))

    @operation
    def get(self, rule_id: str) -> Op[AlarmRule]:
        """One rule."""
        return call("GET", f"alarms/rules/{rule_id}")

    @operation
    def replace(self, rule_id: str, rule: Mapping[str, Any]) -> Op[AlarmRule]:
        """Replace a rule's definition (its alarm keeps its state)."""
        return call("PUT", f"alarms/rules/{rule_id}", json=dict(rule))

    @operation
    def delete(self, rule_id: str) -> Op[None]:
        """Delete a rule and its alarm (the history stays)."""
        return call_no_content("DELETE", f"alarms/rules/{rule_id}")
