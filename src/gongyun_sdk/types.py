"""Shapes of what the API answers, as TypedDicts (plain dicts at run time: no validation library).

Timestamps are ISO 8601 strings as the server sends them; ``datetime.fromisoformat`` reads them.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class TokenPair(TypedDict):
    """Tokens from a sign-in or a refresh."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Me(TypedDict):
    """The caller: who, which tenant, which role and permissions."""

    id: str
    username: str
    kind: Literal["user", "apikey"]
    tenant_id: str
    tenant_name: str
    role: str
    permissions: list[str]


class Tenant(TypedDict):
    """A tenant."""

    id: str
    name: str
    display_name: str
    disabled: bool
    created_at: str


class User(TypedDict):
    """A user of a tenant."""

    id: str
    tenant_id: str
    username: str
    display_name: str
    role: str
    disabled: bool
    locked_until: str | None
    created_at: str


class ApiKey(TypedDict):
    """An API key as listed (never the secret)."""

    id: str
    tenant_id: str
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class ApiKeyCreated(ApiKey):
    """A new API key: ``key`` is shown this once."""

    key: str


class Asset(TypedDict):
    """A node of the ISA-95 hierarchy (enterprise, site, area, line, cell, equipment)."""

    id: str
    parent_id: str | None
    level: str
    name: str
    description: str
    classification: str
    identifier: str
    created_at: str


class Device(TypedDict):
    """A device, optionally bound to an equipment node."""

    id: str
    name: str
    protocol: str
    address: str
    equipment_id: str | None
    description: str
    classification: str
    identifier: str
    created_at: str


class Tag(TypedDict):
    """A tag of a device; ``ref`` (``device/tag``) names it in telemetry."""

    id: str
    device_id: str
    ref: str
    name: str
    data_type: str
    unit: str | None
    source_unit: str | None
    low: float | None
    high: float | None
    classification: str
    description: str
    cleaning: dict[str, Any] | None
    identifier: str
    created_at: str


class Sample(TypedDict):
    """A sample to write: ``ts`` ISO 8601 (the SDK converts datetimes), quality good by default."""

    tag: str
    value: float | int | bool | str | None
    ts: str
    quality: NotRequired[Literal["good", "uncertain", "bad"]]


class Rejection(TypedDict):
    """A sample ingest refused, and why."""

    tag: str
    ts: str | None
    reason: str
    detail: str


class IngestResult(TypedDict):
    """How many samples were stored, and each one refused."""

    accepted: int
    rejected: list[Rejection]


class Point(TypedDict):
    """A stored point."""

    ts: str
    value: float | int | bool | str | None
    quality: str
    interpolated: bool


class RawSeries(TypedDict):
    """Points of one tag; ``truncated`` when the limit cut the range short."""

    tag: str
    series: str
    points: list[Point]
    truncated: bool


class Bucket(TypedDict):
    """One time bucket of a downsampled series."""

    start: str
    count: int
    avg: float | None
    min: float | None
    max: float | None
    first: float | None
    last: float | None


class DownsampledSeries(TypedDict):
    """One tag in buckets of ``width_s`` seconds."""

    tag: str
    series: str
    source: str
    width_s: float
    buckets: list[Bucket]


class LivePoint(TypedDict):
    """A point as the live stream delivers it."""

    tag: str
    ts: str
    value: float | int | bool | str | None


class Alarm(TypedDict):
    """An alarm and its ISA-18.2 state."""

    rule_id: str
    name: str
    kind: str
    priority: str
    state: str
    condition: bool
    shelved_until: str | None
    value: float | None
    message: str
    tags: list[str]
    since: str | None
    changed_by: str | None


class AlarmRule(TypedDict):
    """A rule as stored (kind-specific members beside these); ``valid`` False: the engine skips it."""

    id: str
    name: str
    kind: Literal["threshold", "rate", "expression", "stale"]
    priority: str
    message: str
    enabled: bool
    created_at: str
    updated_at: str
    valid: bool
    tag: NotRequired[str]
    direction: NotRequired[str]
    limit: NotRequired[float]
    deadband: NotRequired[float]
    max_rate_per_s: NotRequired[float]
    expression: NotRequired[str]
    inputs: NotRequired[dict[str, str]]
    max_age_s: NotRequired[float]
    on_delay_s: NotRequired[float]
    off_delay_s: NotRequired[float]
    problems: NotRequired[list[dict[str, Any]]]


class AlarmEvent(TypedDict):
    """One state transition from the alarm history."""

    id: str
    rule_id: str
    name: str
    priority: str
    ts: str
    before: str
    after: str
    cause: str
    user: str | None
    value: float | None


class AlarmTransition(TypedDict):
    """A transition as the live alarm stream delivers it."""

    tenant: str
    rule_id: str
    name: str
    priority: str
    state: str
    before: str
    cause: str
    ts: str
    message: str
    value: float | None
    user: str | None


class IdentifierRecord(TypedDict):
    """An identifier's record in Handle JSON form."""

    handle: str
    values: list[dict[str, Any]]
    version: int
    updatedAt: str


class Registered(TypedDict):
    """The outcome of registering one identifier."""

    handle: str
    created: bool
    version: int


class AuditEvent(TypedDict):
    """One event of a tenant's tamper-evident audit trail."""

    seq: int
    ts: str
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
    hash: str


class AuditVerification(TypedDict):
    """Whether the audit hash chain and transparency log are intact, and where they break."""

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None
    reason: str
    tree_ok: NotRequired[bool]
    tree_size: NotRequired[int]
    tree_root: NotRequired[str]
    problems: NotRequired[list[str]]
