"""Schemathesis over the whole OpenAPI document of a live server, with every check.

The server is ``gongyun serve`` in a subprocess; schemathesis loads ``/openapi.json`` from it
and, for every operation, sends its examples, boundary values (coverage phase) and generated
valid and invalid requests as a platform admin (an API key made through the SDK). Every
built-in check runs: no 5xx, status codes, content types, headers and bodies as documented,
invalid data rejected, valid data accepted, authentication not ignored, unsupported methods
answered 405. The built-in apps are enabled first, so their own routes are tested as well. The
two live streams (server-sent events, endless by design) are left out: ``tests/api/test_sse_live.py``
and ``tests/sdk`` test them over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import engine
from schemathesis.engine import events

from gongyun_sdk import Client, PasswordAuth
from tests.apphelp import ADMIN_PASSWORD
from tests.liveserver import gongyun_serve

MAX_EXAMPLES = 8  # per operation and generation mode: bounded so CI stays within minutes
STATEFUL_STEPS = 50
STREAMS = r"/stream$"
BUILT_IN_APPS = ("maintenance", "quality", "oee", "scheduling", "trace")

# every operation in every phase: minutes on a loaded 2-core machine, more than the default limit
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# Rules a JSON Schema cannot state, checked by the server with a documented 400/422 problem:
# for these operations a schema-valid request may still be refused with that status (and
# only that one). Everything else must accept schema-valid input.
SEMANTIC_RULES: dict[str, tuple[str, str]] = {
    "POST /api/v1/assets": ("422", "an ISA-95 level needs a parent of the level above"),
    "POST /api/v1/assets/devices/{device_id}/tags": ("400,422", "units known to pint and convertible"),
    "PATCH /api/v1/assets/tags/{tag_id}": ("400,422", "units, low <= high, cleaning settings agree"),
    "POST /api/v1/users": ("422", "the password policy (not too repetitive)"),
    "PATCH /api/v1/users/{user_id}": ("400,422", "password policy; one's own needs the current one"),
    "POST /api/v1/alarms/rules": ("422", "an expression that compiles, a deadband below the rate"),
    "PUT /api/v1/alarms/rules/{rule_id}": ("422", "an expression that compiles, a deadband below the rate"),
    "POST /api/v1/alarms/notifiers": ("422", "a webhook URL that reaches a public address (outbound_allow)"),
    "POST /api/v1/identifiers/templates": ("422", "a template definition is checked as a whole"),
    "GET /api/v1/telemetry/raw": ("400", "end after start"),
    "GET /api/v1/telemetry/downsample": ("400", "end after start"),
    "GET /api/v1/telemetry/aligned": ("400", "end after start"),
    "GET /api/v1/telemetry/export": ("400", "end after start"),
    "POST /api/v1/telemetry/clean": ("400,422", "end after start; cleaning settings that go together"),
    "PUT /api/v1/telemetry/retention": ("400", "a tag or an asset, not both; rollups kept as long as raw"),
    "PATCH /api/v1/apps/{name}": ("422", "settings only for an app that has them, valid against its schema"),
    # the built-in apps
    "POST /api/v1/apps/maintenance/detectors": ("400", "a baseline window that ends after it starts"),
    "POST /api/v1/apps/maintenance/rul/models": ("400", "a C-MAPSS file: 26 numeric columns a line"),
    "POST /api/v1/apps/maintenance/rul/telemetry-models": ("400", "at least two recorded runs to failure"),
    "GET /api/v1/apps/quality/charts/{chart_id}/data": ("422", "start before end"),
    "GET /api/v1/apps/quality/charts/{chart_id}/capability": ("422", "start before end"),
    "POST /api/v1/apps/quality/charts": ("422", "rules known, subgroup size in 2..25 for X-bar charts"),
    "POST /api/v1/apps/quality/charts/{chart_id}/limits": ("422", "a baseline window, start before end"),
    "POST /api/v1/apps/quality/inspections": ("422", "a value or a defect count, defects <= sample"),
    "POST /api/v1/apps/quality/inspections/csv": ("422", "a CSV with the documented header"),
    "POST /api/v1/apps/oee/machines": ("422", "a state mapping that defines every state"),
    "PUT /api/v1/apps/oee/machines/{machine_id}": ("422", "a state mapping that defines every state"),
    "PUT /api/v1/apps/oee/reasons": ("422", "a reason tree: codes 1-64 characters, parents known"),
    "POST /api/v1/apps/oee/stops/{stop_id}/code": ("422", "a code of this tenant's reason tree"),
    "GET /api/v1/apps/oee/lines/{line}/oee": ("422", "start before end, at most 400 days"),
    "GET /api/v1/apps/oee/site/oee": ("422", "start before end, at most 400 days"),
    "GET /api/v1/apps/oee/pareto": ("422", "start before end, at most 400 days"),
    "GET /api/v1/apps/oee/machines/{machine_id}/timeline": ("422", "start before end, at most 400 days"),
    "PUT /api/v1/apps/scheduling/machines/{machine_id}": ("422", "unavailable windows end after they start"),
    "POST /api/v1/apps/scheduling/orders": ("422", "operations with an eligible machine, no cycles"),
    "POST /api/v1/apps/trace/templates": ("422", "a template definition is checked as a whole"),
    "POST /api/v1/apps/trace/epcis/capture": ("422", "a document valid against the EPCIS 2.0 schema"),
    "POST /api/v1/apps/trace/partners": ("422", "notify_url, resolver_url reach public addresses"),
    **{
        f"{op} /api/v1/apps/trace/{path}": ("400", "an EPC URI or a GS1 Digital Link")
        for op, path in (
            ("POST", "items"),
            ("POST", "links"),
            ("POST", "grants"),
            ("POST", "recalls"),
            ("GET", "items/{ref}"),
            ("GET", "labels/{ref}"),
            ("GET", "lifecycle/{ref}"),
            ("GET", "trace/{direction}/{ref}"),
            ("GET", "epcis/history/{ref}"),
            ("GET", "epcis/epcs/{epc}/events"),
        )
    },
}
ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]  # schemathesis' default for valid data
# Findings that describe the API as designed. DELETE uninstalls an app from the tenant; the
# catalogue still lists it (state not_installed), so GET after DELETE answers 200. The check
# runs in the stateful phase on the GET that follows, where a per-operation switch on the DELETE
# does not reach it, so the finding is recognised here by operation and title (nothing else).
# /readyz answers 503 (documented) while a dependency misses its probe, as on a loaded machine.
BY_DESIGN = {
    ("DELETE /api/v1/apps/{name}", "Deleted resource still available"),
    ("GET /readyz", "Server error"),
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A live server and a platform-admin API key for it."""
    with gongyun_serve(tmp_path_factory.mktemp("schemathesis")) as url:
        with Client(url, PasswordAuth("admin", ADMIN_PASSWORD)) as admin:
            key = admin.apikeys.create("schemathesis", "platform-admin")["key"]
        for app in BUILT_IN_APPS:  # their own routes answer only where they are enabled
            answer = httpx.patch(
                f"{url}/api/v1/apps/{app}", json={"enabled": True}, headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
        yield url, key


def _engine_config(key: str) -> schemathesis.Config:
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {key}"},
            # NUL characters are refused in paths, queries and headers before routing (400,
            # documented); JSON Schema cannot say "no NUL" on every string, so none are generated.
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "allow-x00": False,
            },
            "request-timeout": 30,
            # Hypothesis' own health checks judge the generator (slow CI, strict patterns whose
            # draws the URL encoding filters), not the API: they must not fail the run.
            "suppress-health-check": ["all"],
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "operations": [
                {
                    "include-name": name,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *status.split(",")]}
                    },
                }
                for name, (status, _) in SEMANTIC_RULES.items()
            ],
        }
    )
    config.projects.get_default().checks.update(included_check_names=["all"])  # --checks all
    return config


def _answer(recorder: Any, case_id: str) -> str:
    """The answer the server gave to a failing case (status and the start of its body)."""
    interaction = recorder.interactions.get(case_id)
    response = interaction.response if interaction is not None else None
    if response is None:
        return ""
    return f"\n    -> {response.status_code} {response.content[:300]!r}"


def _failures(recorder: Any) -> dict[tuple[str, str], str]:
    """The distinct failed checks of a scenario: (operation, title) -> message and reproduction."""
    out: dict[tuple[str, str], str] = {}
    for case_id, checks in recorder.checks.items():
        for check in checks:
            info = check.failure_info
            if info is not None:
                failure = info.failure
                key = (str(failure.operation), str(failure.title))
                if key in BY_DESIGN:
                    continue
                out.setdefault(key, f"{failure.message}\n    {info.code_sample}{_answer(recorder, case_id)}")
    return out


def test_the_api_matches_its_openapi_document(live: tuple[str, str]) -> None:
    """What ``schemathesis run --checks all`` runs (every phase), through its Python engine."""
    url, key = live
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_engine_config(key))
    schema = loaded.exclude(path_regex=STREAMS)
    failures: dict[tuple[str, str], str] = {}
    errors: list[str] = []
    tested: set[str] = set()
    checks_run = 0
    finished: events.EngineFinished | None = None
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            tested.add(event.recorder.label)
            checks_run += sum(len(c) for c in event.recorder.checks.values())
            failures.update(_failures(event.recorder))
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None
    report = [f"{op} — {title}\n{detail}" for (op, title), detail in sorted(failures.items())]
    report += [
        f"{f.operation} — {f.title}\n{f.message}"
        for f in finished.failures
        if (str(f.operation), str(f.title)) not in BY_DESIGN
    ]
    assert not report + errors, "\n\n".join(report + errors)
    assert len(tested) >= 120 and checks_run > 1000, (len(tested), checks_run)
    print(f"schemathesis: {len(tested)} operations, {checks_run} checks, {finished.running_time:.0f} s")
