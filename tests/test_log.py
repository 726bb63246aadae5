"""Structured logs: JSON lines, request ids, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gongyun.cli.common import STATE, log_level
from gongyun.config import load_settings
from gongyun.log import LIBRARY_LOGGERS, JsonFormatter, quiet_libraries, redact, request_id_var, setup_logging
from gongyun.platform import Platform
from tests.apphelp import ADMIN_PASSWORD


def test_redact_masks_tokens_keys_and_passwords() -> None:
    text = "Authorization: Bearer eyJabc.def.ghi key gy_0123456789ab_SECRETSECRET password=hunter2hunter2"
    out = redact(text)
    assert "eyJabc" not in out and "SECRETSECRET" not in out and "hunter2" not in out


def test_json_formatter_adds_request_id_and_masks_secret_fields() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.password = "p4ss"
    record.request_id = "rid-1"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "hello world" and doc["request_id"] == "rid-1" and doc["password"] == "***"
    request_id_var.set(None)


async def test_request_ids_and_no_secrets_in_access_logs(
    app_client: tuple[httpx.AsyncClient, Platform], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = app_client
    caplog.set_level(logging.INFO)
    resp = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    token = resp.json()["access_token"]
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "abc-123"}
    )
    assert me.headers["x-request-id"] == "abc-123"
    assert len(resp.headers["x-request-id"]) == 32
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    joined = "\n".join(lines)
    assert ADMIN_PASSWORD not in joined and token not in joined
    access = [json.loads(line) for line in lines if '"gongyun.access"' in line]
    assert access and all("status" in a and "ms" in a for a in access)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root handlers and every logger's level back after a test configures logging."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _emitted(level: str) -> set[str]:
    """Configure logging at ``level``, log from the platform and from libraries; what came out."""
    setup_logging(level, "json")
    [handler] = logging.getLogger().handlers
    out = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)  # only what the configured handler writes, not other tests' handlers
    logging.getLogger("gongyun.demo").info("platform info")
    logging.getLogger("asyncua.server.address_space").info("read of ns=2;i=7")
    logging.getLogger("asyncua.server.address_space").debug("library debug")
    logging.getLogger("pymodbus.logging").warning("library warning")
    logging.getLogger("httpx").info("HTTP Request: GET http://x")
    return {json.loads(line)["msg"] for line in out.getvalue().splitlines()}


def test_library_loggers_are_held_at_warning_by_default(restore_logging: None) -> None:
    assert _emitted("INFO") == {"platform info", "library warning"}
    assert logging.getLogger("asyncua.server.uaprocessor").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("nats.aio.client").getEffectiveLevel() == logging.WARNING
    # uvicorn's access lines too (uvicorn itself stops them propagating: gongyun.access has them)
    assert logging.getLogger("uvicorn.access").level == logging.WARNING
    # A stricter level applies to the libraries too.
    assert _emitted("ERROR") == set()


def test_debug_shows_the_library_loggers(restore_logging: None) -> None:
    assert _emitted("DEBUG") == {
        "platform info",
        "read of ns=2;i=7",
        "library debug",
        "library warning",
        "HTTP Request: GET http://x",
    }
    assert logging.getLogger("uvicorn.access").level == logging.DEBUG


def test_cli_debug_flag_selects_debug_level(tmp_path: Path) -> None:
    cfg = load_settings(data_dir=tmp_path, log_level="WARNING")
    assert log_level(cfg) == "WARNING"
    STATE.debug = True
    try:
        assert log_level(cfg) == "DEBUG"
    finally:
        STATE.debug = False


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        quiet_libraries("LOUD")
