"""Settings from gongyun.toml and GONGYUN_* variables; profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from gongyun.config import Profile, load_settings
from gongyun.errors import ConfigError


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.profile is Profile.embedded
    assert s.effective_bus_url == "memory://"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.host == ["127.0.0.1", "::1"] and s.port == 8000


def test_toml_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "server.toml"
    cfg.write_text(
        'profile = "server"\n'
        'database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/gongyun"\n'
        'bus_url = "nats://127.0.0.1:4222"\n'
        'redis_url = "redis://127.0.0.1:6379/0"\n'
        "port = 9000\n"
    )
    monkeypatch.setenv("GONGYUN_CONFIG", str(cfg))
    monkeypatch.setenv("GONGYUN_PORT", "9100")
    monkeypatch.setenv("GONGYUN_SECRET_KEY", "k" * 40)
    s = load_settings()
    assert s.profile is Profile.server
    assert s.effective_bus_url == "nats://127.0.0.1:4222"
    assert s.port == 9100  # the environment wins over the file


def test_server_profile_needs_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GONGYUN_PROFILE", "server")
    with pytest.raises(ConfigError, match="database_url") as info:
        load_settings()
    assert "secret_key" in info.value.message


def test_short_secret_key_and_missing_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="32 characters"):
        load_settings(secret_key="short")
    monkeypatch.setenv("GONGYUN_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_unknown_keys_and_bad_values_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "gongyun.toml"
    cfg.write_text('prot = 8000\nlog_format = "xml"\n')
    monkeypatch.setenv("GONGYUN_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "prot" in info.value.message and "log_format" in info.value.message


def test_secret_key_generated_once_with_private_mode(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path / "var")
    first = s.jwt_secret()
    assert len(first) >= 48 and first == s.jwt_secret()
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8,192.168.0.0/16", ["10.0.0.0/8", "192.168.0.0/16"]),
        (' ["fd00::/8", "127.0.0.1/32"] ', ["fd00::/8", "127.0.0.1/32"]),
        ("", []),
    ],
)
def test_trusted_proxies_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GONGYUN_TRUSTED_PROXIES", value)
    assert [str(n) for n in load_settings().trusted_proxies] == expected


@pytest.mark.parametrize("value", ["10.0.0.0/33", "[not json", "proxy.example"])
def test_bad_trusted_proxies_are_one_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GONGYUN_TRUSTED_PROXIES", value)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings()
