"""Client address behind reverse proxies: only a trusted peer's X-Forwarded-For is believed
(login throttle, audit trail, access log), over HTTP on both databases."""

from __future__ import annotations

import logging
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest

from gongyun.security.proxies import forwarded_client
from tests.api.test_auth_sessions import TOKEN, app_from_addresses
from tests.apphelp import ADMIN_PASSWORD

TRUSTED = [ip_network("10.1.0.0/16"), ip_network("fd00::/8")]


def test_right_most_untrusted_hop_is_the_client() -> None:
    assert forwarded_client("10.1.0.5", ["198.51.100.7"], TRUSTED) == "198.51.100.7"
    # a client-written hop on the left is skipped; trusted proxies on the right are walked past
    assert forwarded_client("10.1.0.5", ["6.6.6.6, 198.51.100.7, 10.1.0.9"], TRUSTED) == "198.51.100.7"
    assert forwarded_client("10.1.0.5", ["6.6.6.6", "198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert forwarded_client("::ffff:10.1.0.5", ["[2001:db8::1]:4711"], TRUSTED) == "2001:db8::1"
    assert forwarded_client("fd00::1", ["198.51.100.7:5000"], TRUSTED) == "198.51.100.7"
    # only trusted hops: the left-most; garbage: the last address a trusted proxy vouched for
    assert forwarded_client("10.1.0.5", ["10.1.0.8, 10.1.0.9"], TRUSTED) == "10.1.0.8"
    assert forwarded_client("10.1.0.5", ["unknown, 10.1.0.9"], TRUSTED) == "10.1.0.9"
    assert forwarded_client("10.1.0.5", [], TRUSTED) == "10.1.0.5"
    # an untrusted peer, or no trusted proxies at all: the header is ignored
    assert forwarded_client("203.0.113.9", ["198.51.100.7"], TRUSTED) == "203.0.113.9"
    assert forwarded_client("10.1.0.5", ["198.51.100.7"], []) == "10.1.0.5"
    assert forwarded_client(None, ["198.51.100.7"], TRUSTED) is None


async def _fail(client: httpx.AsyncClient, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    data = {"username": "admin", "password": "wrong-password-1"}
    return (await client.post(TOKEN, data=data, headers=headers)).status_code


async def test_throttle_audit_and_log_use_the_address_behind_a_trusted_proxy(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"login_ip_threshold": 3, "lockout_threshold": 100, "trusted_proxies": ["10.1.0.0/16"]}
    async with app_from_addresses(tmp_path, db_url, **settings) as clients:
        proxy, direct = clients("10.1.0.5"), clients("203.0.113.9")
        assert [await _fail(proxy, "198.51.100.7") for _ in range(3)] == [401] * 3
        # The same client, whatever it writes to the left of what the proxy appended: throttled.
        assert await _fail(proxy, "192.0.2.1, 198.51.100.7") == 429
        # Another client behind the same proxy is a different address.
        with caplog.at_level(logging.INFO, logger="gongyun.access"):
            ok = await proxy.post(
                TOKEN,
                data={"username": "admin", "password": ADMIN_PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.8"},
            )
        assert ok.status_code == 200, ok.text
        logged = [
            r for r in caplog.records if r.name == "gongyun.access" and r.getMessage().startswith("POST")
        ]
        assert [(getattr(r, "client", None), getattr(r, "peer", None)) for r in logged] == [
            ("198.51.100.8", "10.1.0.5")
        ]
        # An untrusted peer cannot move itself to another bucket with a spoofed header.
        codes = [await _fail(direct, f"192.0.2.{n}") for n in range(4)]
        assert codes == [401, 401, 401, 429]
        root = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        trail = (await proxy.get("/api/v1/audit?action=auth.login&limit=50", headers=root)).json()
        seen = {(e["outcome"], e["detail"]["client"]) for e in trail}
        assert seen == {
            ("failure", "198.51.100.7"),
            ("success", "198.51.100.8"),
            ("failure", "203.0.113.9"),
        }
        # Audit events of authenticated calls carry the client address too.
        made = await proxy.post(
            "/api/v1/apikeys",
            json={"name": "k-proxy", "role": "viewer"},
            headers={**root, "X-Forwarded-For": "198.51.100.8"},
        )
        assert made.status_code == 201, made.text
        created = (await proxy.get("/api/v1/audit?action=apikey.create", headers=root)).json()
        assert [e["detail"]["client"] for e in created] == ["198.51.100.8"]


async def test_without_trusted_proxies_the_header_is_ignored(tmp_path: Path, db_url: str) -> None:
    async with app_from_addresses(tmp_path, db_url, login_ip_threshold=2, lockout_threshold=100) as clients:
        proxy = clients("10.1.0.5")
        codes = [await _fail(proxy, f"198.51.100.{n}") for n in range(3)]
        assert codes == [401, 401, 429]  # every attempt counted on the peer
        other = clients("10.1.0.6")
        ok = await other.post(TOKEN, data={"username": "admin", "password": ADMIN_PASSWORD})
        assert ok.status_code == 200
        root = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        trail = (await other.get("/api/v1/audit?action=auth.login&limit=50", headers=root)).json()
        assert {e["detail"]["client"] for e in trail} == {"10.1.0.5", "10.1.0.6"}


def test_trusted_proxies_setting_takes_cidrs_and_rejects_others() -> None:
    from gongyun.config import load_settings
    from gongyun.errors import ConfigError

    assert load_settings().trusted_proxies == []
    cfg = load_settings(trusted_proxies=["10.0.0.0/8", "::1", "192.0.2.1"])
    assert [str(n) for n in cfg.trusted_proxies] == ["10.0.0.0/8", "::1/128", "192.0.2.1/32"]
    with pytest.raises(ConfigError, match="is not a network in CIDR form"):
        load_settings(trusted_proxies=["10.0.0.1/8"])
