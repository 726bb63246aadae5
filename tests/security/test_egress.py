"""The outbound policy: private targets refused unless allowed, names checked by what they resolve to."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from gongyun.config import load_settings
from gongyun.security.egress import OutboundTargetRefused, check_target, check_url, redact


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1:8080/x",
        "http://169.254.169.254/latest/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:192.168.1.1]/",
        "http://0.0.0.0/",
        "gopher://example.com/",
        "http:///nohost",
        "https://user:secret@example.com/",
    ],
)
async def test_refused(url: str) -> None:
    with pytest.raises(OutboundTargetRefused) as err:
        await check_target(url, (), "notify_url")
    assert err.value.code == "outbound_target_refused" and err.value.status == 422
    assert "secret" not in str(err.value)


async def test_names_are_checked_by_their_addresses_and_the_allow_list_opens_networks() -> None:
    with pytest.raises(OutboundTargetRefused, match=r"resolves to 127\.0\.0\.1"):
        await check_target("http://localhost:8000/", ())
    await check_target("http://localhost:8000/", [ip_network("127.0.0.0/8")])
    await check_target("http://[::ffff:10.1.2.3]/", [ip_network("10.0.0.0/8")])
    await check_target("https://93.184.216.34/x", ())
    await check_target("http://no-such-host.invalid/", ())  # unresolvable: the request fails by itself
    assert check_url("https://example.com/x") == ("example.com", 443)


def test_the_setting_takes_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONGYUN_OUTBOUND_ALLOW", "10.0.0.0/8, fd00::/8")
    assert load_settings().outbound_allow == [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


def test_redact_hides_credentials() -> None:
    assert redact("https://u:secret@example.com:8443/x?y=1") == "https://***@example.com:8443/x?y=1"
    assert redact("https://example.com/x") == "https://example.com/x"
