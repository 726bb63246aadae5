"""Structured logs: JSON lines, request ids, secrets redacted."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from gongyun.log import JsonFormatter, redact, request_id_var
from gongyun.runtime import Runtime
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
    app_client: tuple[httpx.AsyncClient, Runtime], caplog: pytest.LogCaptureFixture
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
