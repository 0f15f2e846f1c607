"""`agent-slo serve`: arguments, token from the environment, and no listening beyond loopback without one."""

from __future__ import annotations

import argparse

import pytest

from agentslo.exporter import command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["examples/cx-support.slo.yaml", *argv])


def test_defaults_are_loopback_and_9120() -> None:
    args = parse()
    assert (args.host, args.port, args.db) == ("127.0.0.1", 9120, None)


def test_refuses_to_listen_beyond_loopback_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(command.TOKEN_ENV, raising=False)
    assert command.run(parse("--host", "0.0.0.0")) == 2
    assert "without a token" in capsys.readouterr().err


def test_token_comes_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(command.TOKEN_ENV, "from-env")
    assert command.config_from(parse()).token == "from-env"
    assert command.config_from(parse("--token", "flag")).token == "flag"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert command._is_loopback(host) is loopback


def test_allowed_origins_and_the_idempotency_bound_come_from_flags() -> None:
    config = command.config_from(
        parse(
            "--allow-origin",
            "https://a.example",
            "--allow-origin",
            "http://b:8080",
            "--max-idempotency-keys",
            "10",
        )
    )
    assert config.allowed_origins == ("https://a.example", "http://b:8080")
    assert config.max_idempotency_keys == 10
    assert command.config_from(parse()).allowed_origins == ()
