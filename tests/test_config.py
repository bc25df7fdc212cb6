"""Settings: defaults, TOML, environment, CLI overrides, and refusing clear text off loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleconsult.config import ConfigError, IceServer, load_settings


def test_defaults_are_the_embedded_ones() -> None:
    settings = load_settings(environ={})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.server.base_url == "http://127.0.0.1:8080"
    assert settings.signaling.ice_servers == () and not settings.server.secure_cookies


def test_precedence_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "teleconsult.toml"
    config.write_text(
        'port = 9000\nguest_seats = 2\nlog_level = "DEBUG"\n'
        'ice_servers = [{urls = ["turn:turn.example.org:3478"], username = "u", credential = "c"}]\n'
    )
    settings = load_settings(
        {"port": 9100},
        environ={"TELECONSULT_PORT": "9050", "TELECONSULT_GUEST_SEATS": "3", "TELECONSULT_DEMO": "yes"},
        config_file=config,
    )
    assert settings.server.port == 9100 and settings.signaling.guest_seats == 3 and settings.server.demo is True
    assert settings.server.log_level == "DEBUG"
    assert settings.signaling.ice_servers == (IceServer(("turn:turn.example.org:3478",), "u", "c"),)


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('public_url = "https://tc.example.org/"\n')
    settings = load_settings(environ={"TELECONSULT_CONFIG": str(config)})
    assert settings.server.base_url == "https://tc.example.org"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TELECONSULT_PORT": "eighty"}, "port"),
        ({"TELECONSULT_DEMO": "maybe"}, "demo"),
        ({"TELECONSULT_EVENT_LOOP": "trio"}, "event_loop: uvloop or asyncio"),
        ({"TELECONSULT_NOPE": "1"}, None),
    ],
)
def test_bad_values_are_reported(environ: dict[str, str], message: str | None) -> None:
    if message is None:
        assert load_settings(environ=environ).server.port == 8080  # unknown variables are not settings
        return
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_unknown_keys_in_a_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("prot = 80\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(environ={}, config_file=config)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "tc.example.org", "::"])
def test_serving_off_loopback_needs_tls(host: str) -> None:
    with pytest.raises(ConfigError, match="TLS"):
        load_settings({"host": host}, environ={}).server.check_serving()
    public = {"public_url": "https://tc.example.org"}
    load_settings({"host": host, "behind_proxy": True} | public, environ={}).server.check_serving()
    load_settings({"host": host, "self_signed": True} | public, environ={}).server.check_serving()


def test_a_proxy_or_a_wildcard_address_needs_the_public_url() -> None:
    with pytest.raises(ConfigError, match="public_url"):
        load_settings({"behind_proxy": True}, environ={}).server.check_serving()
    with pytest.raises(ConfigError, match="public_url"):
        load_settings({"host": "0.0.0.0", "self_signed": True}, environ={}).server.check_serving()
    load_settings({"host": "192.0.2.10", "self_signed": True}, environ={}).server.check_serving()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_may_be_plain_http(host: str) -> None:
    load_settings({"host": host}, environ={}).server.check_serving()
