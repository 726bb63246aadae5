"""Alarm notifications: webhook (httpx) and e-mail (stdlib smtplib in a worker thread)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat

from gongyun.alarms.states import Priority
from gongyun.core.jsonnum import JsonInt
from gongyun.security.egress import Network, check_target

_log = logging.getLogger("gongyun.alarms.notify")


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """What a notification says about one alarm transition."""

    tenant: str
    rule_id: str
    name: str
    priority: Priority
    state: str
    cause: str
    ts: str
    message: str = ""
    value: float | None = None
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON body of a webhook."""
        return {
            "tenant": self.tenant,
            "rule_id": self.rule_id,
            "name": self.name,
            "priority": str(self.priority),
            "state": self.state,
            "cause": self.cause,
            "ts": self.ts,
            "message": self.message,
            "value": self.value,
            "user": self.user,
        }

    @property
    def subject(self) -> str:
        """A one-line e-mail subject."""
        return f"[{self.priority.upper()}] {self.name}: {self.cause} ({self.state})"


class Notifier(Protocol):
    """Something that delivers alarm notices."""

    min_priority: Priority
    causes: frozenset[str]

    async def send(self, notice: AlarmNotice) -> None:
        """Deliver one notice (raise on failure)."""


class WebhookConfig(BaseModel):
    """A webhook target."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://", max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: StrictFloat = Field(default=5.0, gt=0, le=60)
    min_priority: Priority = Priority.low
    causes: list[str] = Field(default_factory=lambda: ["activated"])


class EmailConfig(BaseModel):
    """An SMTP target."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=255)
    port: JsonInt = Field(default=25, ge=1, le=65535)
    sender: str = Field(min_length=3, max_length=320)
    recipients: list[str] = Field(min_length=1, max_length=50)
    starttls: StrictBool = False
    username: str | None = None
    password: str | None = None
    timeout_s: StrictFloat = Field(default=10.0, gt=0, le=120)
    min_priority: Priority = Priority.low
    causes: list[str] = Field(default_factory=lambda: ["activated"])


@dataclass
class WebhookNotifier:
    """POSTs the notice as JSON (only to a public address or one in ``allow``)."""

    config: WebhookConfig
    allow: Sequence[Network] = ()
    min_priority: Priority = field(init=False)
    causes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.min_priority = self.config.min_priority
        self.causes = frozenset(self.config.causes)

    async def send(self, notice: AlarmNotice) -> None:
        """POST and insist on a 2xx answer; refused first if the URL now leads to a private address."""
        await check_target(self.config.url, self.allow, "config.url")
        async with httpx.AsyncClient(timeout=self.config.timeout_s) as client:
            resp = await client.post(self.config.url, json=notice.to_dict(), headers=self.config.headers)
            resp.raise_for_status()


@dataclass
class EmailNotifier:
    """Sends a plain-text e-mail through an SMTP server."""

    config: EmailConfig
    min_priority: Priority = field(init=False)
    causes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.min_priority = self.config.min_priority
        self.causes = frozenset(self.config.causes)

    def _send_sync(self, notice: AlarmNotice) -> None:
        c = self.config
        msg = EmailMessage()
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.recipients)
        msg["Subject"] = notice.subject
        lines = [f"{k}: {v}" for k, v in notice.to_dict().items() if v not in (None, "")]
        msg.set_content("\n".join(lines) + "\n")
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if c.username and c.password:
                smtp.login(c.username, c.password)
            smtp.send_message(msg)

    async def send(self, notice: AlarmNotice) -> None:
        """Send in a worker thread (smtplib blocks)."""
        await asyncio.to_thread(self._send_sync, notice)


def make_notifier(config: WebhookConfig | EmailConfig, allow: Sequence[Network] = ()) -> Notifier:
    """A notifier for a stored target configuration (webhooks may reach the ``allow`` networks)."""
    if isinstance(config, WebhookConfig):
        return WebhookNotifier(config, allow)
    return EmailNotifier(config)


def wants(notifier: Notifier, notice: AlarmNotice) -> bool:
    """True when the notifier is interested in this notice."""
    return notice.priority.rank >= notifier.min_priority.rank and notice.cause in notifier.causes


async def dispatch(notifiers: list[Notifier], notice: AlarmNotice) -> int:
    """Send to every interested notifier; failures are logged, not raised. Return successes."""
    ok, _ = await dispatch_counted(notifiers, notice)
    return ok


async def dispatch_counted(notifiers: list[Notifier], notice: AlarmNotice) -> tuple[int, int]:
    """Send to every interested notifier; return (delivered, failed), failures logged, not raised."""
    ok = failed = 0
    for n in notifiers:
        if not wants(n, notice):
            continue
        try:
            await n.send(notice)
            ok += 1
        except Exception as exc:
            failed += 1
            _log.warning("alarm notification via %s failed: %s", type(n).__name__, exc)
    return ok, failed
