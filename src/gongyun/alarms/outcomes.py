"""The audit trail of operator actions on alarms: who asked, and what the engine made of it.

The API records the request (outcome ``pending``, with the caller's address) in the
transaction that queues the command. The engine records the final outcome
(``applied``, ``rejected`` or ``expired``) with :func:`audit_command_outcome` in the
transaction that gives the command that outcome, so every operator action has exactly one
outcome event whether the API waited for it or answered 202.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms.models import AlarmCommandRow
from gongyun.security.audit import record

OPERATOR_ACTIONS = frozenset({"ack", "shelve", "unshelve"})
"""Commands that are operator actions (the others are reloads, audited as rule/target edits)."""
EXPIRED_CODE = "alarm_command_expired"
"""``CommandExpired.code`` (spelled out: the engine imports this module)."""
USER_MAX = 64
"""Width of ``alarm_commands.user`` and ``alarm_events.user``."""
SYSTEM_ACTOR = "system"


def command_user(actor: str) -> str:
    """The actor as stored on a command and its history row (cut to the column's width)."""
    return actor if len(actor) <= USER_MAX else actor[: USER_MAX - 1] + "…"


def command_outcome(command: AlarmCommandRow) -> str:
    """``pending``, ``applied``, ``rejected`` or ``expired`` (a rejection for waiting too long)."""
    if command.status == "rejected" and command.error_code == EXPIRED_CODE:
        return "expired"
    return command.status


def _detail(command: AlarmCommandRow) -> dict[str, Any]:
    detail: dict[str, Any] = {"command_id": command.id}
    if command.duration_s is not None:
        detail["duration_s"] = command.duration_s
    if command.error_code:
        detail["error"] = command.error_code
    return detail


async def audit_command_request(session: AsyncSession, command: AlarmCommandRow, client: str) -> int | None:
    """Record that ``command`` was requested (outcome ``pending``) in the caller's transaction."""
    if command.action not in OPERATOR_ACTIONS:
        return None
    actor = command.user or SYSTEM_ACTOR
    target = command.rule_id or ""
    detail = {**_detail(command), "client": client}
    return await record(
        session, command.tenant_id, actor, f"alarm.{command.action}", target, "pending", **detail
    )


async def audit_command_outcome(
    session: AsyncSession, command: AlarmCommandRow, outcome: str | None = None
) -> int | None:
    """Record an operator command's final outcome in the caller's transaction; return the seq.

    ``outcome`` defaults to :func:`command_outcome`. Reload commands and commands still
    pending are not recorded (None).
    """
    outcome = outcome or command_outcome(command)
    if command.action not in OPERATOR_ACTIONS or outcome == "pending":
        return None
    actor = command.user or SYSTEM_ACTOR
    target = command.rule_id or ""
    return await record(
        session, command.tenant_id, actor, f"alarm.{command.action}", target, outcome, **_detail(command)
    )
