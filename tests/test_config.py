"""Configuration: each option declared once, read from the environment, overridden by generated flags."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from chaser_mcp import cli
from chaser_mcp.config import Settings, SettingsError, env_name
from chaser_mcp.local.__main__ import LocalAPISettings
from chaser_mcp.local.__main__ import main as local_api_main


def load(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    return cli.load_settings(cli.parse_args(argv), env or {})


def refusal(env: dict[str, str], argv: tuple[str, ...] = ()) -> str:
    with pytest.raises(SettingsError) as raised:
        load(list(argv), env)
    return str(raised.value)


def test_a_flag_overrides_its_variable() -> None:
    assert load(["--timeout", "5"], {"CHASER_TIMEOUT": "9"}).timeout == 5.0


def test_a_variable_applies_when_its_flag_is_absent() -> None:
    assert load([], {"CHASER_TIMEOUT": "9"}).timeout == 9.0


def test_the_historical_flags_set_their_options() -> None:
    settings = load(
        [
            "--local", "--transport", "HTTP", "--lease", "60", "--max-sessions", "5", "--journal", "off",
            "--log-level", "debug", "--allowed-host", "a.example", "--allowed-host", "b.example",
            "--allowed-origin", "https://c.example", "--session-idle-timeout", "120",
        ]
    )  # fmt: skip

    assert (settings.local, settings.transport, settings.lease_seconds) == (True, "http", 60.0)
    assert (settings.local_max_sessions, settings.journal_enabled, settings.log_level) == (5, False, "DEBUG")
    assert settings.allowed_hosts == ("a.example", "b.example")
    assert settings.allowed_origins == ("https://c.example",)
    assert settings.session_idle_timeout == 120.0


def test_a_list_variable_is_comma_separated_and_repeated_flags_replace_it() -> None:
    env = {"CHASER_ALLOWED_HOSTS": " a.example, ,b.example "}
    assert load([], env).allowed_hosts == ("a.example", "b.example")
    assert load(["--allowed-host", "c.example"], env).allowed_hosts == ("c.example",)


def test_a_journal_path_keeps_the_journal_on() -> None:
    settings = load(["--journal", "/tmp/j.sqlite3"])
    assert (settings.journal_enabled, settings.journal_path) == (True, "/tmp/j.sqlite3")


def test_a_blank_variable_means_the_default() -> None:
    assert load([], {"CHASER_BASE_URL": "  ", "CHASER_PORT": ""}) == load([])


@pytest.mark.parametrize(
    ("env", "argv", "sentence"),
    [
        ({"CHASER_TIMEOUT": "soon"}, (), "CHASER_TIMEOUT (--timeout) must be a number, got 'soon'"),
        ({}, ("--timeout", "9999"), "CHASER_TIMEOUT (--timeout) must be between 0.1 and 600, got '9999.0'"),
        ({"CHASER_PORT": "80.5"}, (), "CHASER_PORT (--port) must be a whole number, got '80.5'"),
        ({"CHASER_LOCAL": "maybe"}, (), "CHASER_LOCAL (--local) must be true or false, got 'maybe'"),
        ({"CHASER_TRANSPORT": "ws"}, (), "CHASER_TRANSPORT (--transport) must be one of 'stdio', 'http'"),
        (
            {"CHASER_LOCAL_MAX_SESSIONS": "0"},
            (),
            "CHASER_LOCAL_MAX_SESSIONS (--max-sessions) must be between",
        ),
        ({"CHASER_BASE_URL": "ftp://x"}, (), "CHASER_BASE_URL (--base-url) must start with http://"),
        ({"CHASER_AUTH_TOKEN": "a b"}, (), "CHASER_AUTH_TOKEN (--auth-token) must be printable ASCII"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable_and_the_flag(
    env: dict[str, str], argv: tuple[str, ...], sentence: str
) -> None:
    message = refusal(env, argv)

    assert message.startswith(sentence)
    assert "\n" not in message and "validation error" not in message and "pydantic" not in message


def test_listening_off_loopback_without_a_token_is_refused() -> None:
    assert "without an inbound token" in refusal({"CHASER_TRANSPORT": "http", "CHASER_HOST": "0.0.0.0"})


def test_listening_off_loopback_with_a_token_is_allowed() -> None:
    settings = load(["--transport", "http", "--host", "0.0.0.0"], {"CHASER_AUTH_TOKEN": "t0ken"})
    assert settings.auth_token == "t0ken"


def test_multi_tenant_needs_an_http_transport() -> None:
    assert "needs an HTTP transport" in refusal({"CHASER_MULTI_TENANT": "1"})


def test_a_chrome_that_is_not_executable_stops_a_local_start(tmp_path: Path) -> None:
    assert "CHASER_CHROME (--chrome)" in refusal({"CHASER_CHROME": str(tmp_path / "nope")}, ("--local",))


def test_the_chrome_setting_resolves_an_executable() -> None:
    assert load(["--local", "--chrome", sys.executable]).chrome == sys.executable


def test_the_key_and_token_stay_out_of_repr_str_and_dumps() -> None:
    settings = load([], {"CHASER_KEY": "key-s3cret", "CHASER_AUTH_TOKEN": "tok-s3cret"})

    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "key-s3cret" not in shown and "tok-s3cret" not in shown
    assert (settings.api_key, settings.auth_token) == ("key-s3cret", "tok-s3cret")


def test_the_constructor_reads_no_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASER_TIMEOUT", "9")
    monkeypatch.setenv("CHASER_KEY", "from-process")
    settings = Settings(api_key="given")
    assert (settings.timeout, settings.api_key) == (30.0, "given")


def test_a_copy_takes_changes_by_their_historical_names() -> None:
    settings = Settings.from_env({}).with_(api_key="local-key", journal_enabled=False, timeout=3.0)
    assert (settings.api_key, settings.journal_enabled, settings.timeout) == ("local-key", False, 3.0)
    assert "local-key" not in repr(settings)


def test_a_copy_does_not_read_the_token_file_again(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    settings = Settings.from_env({"CHASER_AUTH_TOKEN_FILE": str(token_file)})
    token_file.unlink()
    assert settings.with_(timeout=5.0).auth_token == "file-token"


def test_every_option_but_the_keys_has_a_flag_whose_help_names_its_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    Settings.add_flags(parser)
    helps = {action.dest: action.help or "" for action in parser._actions}

    # The API key and the replicas' shared secret: a flag is readable by every local user.
    assert set(Settings.model_fields) - set(helps) == {"key", "state_secret"}
    for name in helps.keys() - {"help"}:
        assert helps[name].count(env_name(Settings, name)) >= 1 and helps[name].count("default: ") == 1, name


def test_a_bad_variable_makes_the_command_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([], {"CHASER_LEASE_SECONDS": "-1"})

    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "chaser-mcp: CHASER_LEASE_SECONDS (--lease) must be between 0.1 and 86400, got '-1'\n"
    )


def test_the_local_api_reads_its_key_and_options_from_the_declarations() -> None:
    settings = LocalAPISettings.from_env(
        {"CHASER_LOCAL_KEY": "lk", "CHASER_LOCAL_PORT": "0", "CHASER_LOCAL_LOG_LEVEL": "INFO"}, max_sessions=2
    )
    assert (settings.api_key, settings.port, settings.log_level, settings.max_sessions) == (
        "lk",
        0,
        "info",
        2,
    )


def test_the_local_api_refuses_a_bad_flag_in_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        local_api_main(["--max-sessions", "999"], prog="chaser-mcp local-api")

    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "chaser-mcp local-api: CHASER_LOCAL_MAX_SESSIONS (--max-sessions) must be between 1 and 64, "
        "got '999'\n"
    )


def test_a_rejected_secret_is_not_repeated_in_the_error() -> None:
    message = refusal({"CHASER_AUTH_TOKEN": "tök-s3cret"})
    assert "s3cret" not in message and "CHASER_AUTH_TOKEN" in message
