"""Redaction of emails, phone numbers and Luhn-valid card numbers; what must survive it."""

from __future__ import annotations

import time

import pytest

from agentslo.feedback.redact import Redactor, luhn_ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+refunds@mail.example.co.uk today", "write to [EMAIL] today"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("call +1 415-555-0100", "call [PHONE]"),
        ("call +44 20 7946 0958", "call [PHONE]"),
        ("call (415) 555-0100 now", "call [PHONE] now"),
        ("call 415.555.0100", "call [PHONE]"),
        ("call 4155550100", "call [PHONE]"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567812345678 is shipped",  # 16 digits, fails Luhn: an order id, not a card
        "on 2024-01-15 at 10:30",
        "refund of 1 000 000 units",
        "order #123456, 3-5 business days",
        "version 1.2.3",
    ],
)
def test_ordinary_numbers_survive(text: str) -> None:
    assert Redactor().text(text) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("5555555555554444")
    assert not luhn_ok("4111111111111112")


def test_kinds_are_configurable() -> None:
    text = "bob@example.com 4111111111111111"
    assert Redactor.parse("email").text(text) == "[EMAIL] 4111111111111111"
    assert Redactor.parse("none").text(text) == text
    assert Redactor.parse("all").text(text) == "[EMAIL] [CARD]"
    with pytest.raises(ValueError, match="unknown redaction kind"):
        Redactor.parse("ssn")


def test_nested_values_are_redacted_and_keys_kept() -> None:
    data = {
        "messages": [{"role": "user", "content": "I'm bob@example.com"}],
        "n": 3,
        "tool_calls": [{"input": {"email": "bob@example.com"}}],
    }
    assert Redactor().value(data) == {
        "messages": [{"role": "user", "content": "I'm [EMAIL]"}],
        "n": 3,
        "tool_calls": [{"input": {"email": "[EMAIL]"}}],
    }


# --- linear time, whatever the text (issue 17: 2) ---

HOSTILE_UNITS = {
    "word": "a",  # the example: one 250,000-character word (O(n²) for the old email pattern)
    "digits": "1",
    "spaced-digits": "1 ",
    "dashed-digits": "1-",
    "plus": "+1 ",
    "at-signs": "a@",
    "dots": "a.",
    "at-dot": "a@a.",
    "parentheses": "(1) ",
    "emails": "bob@example.com ",
    "cards": "4111 1111 1111 1111 ",
    "phones": "+1 415-555-0100 ",
}


@pytest.mark.parametrize("unit", HOSTILE_UNITS.values(), ids=HOSTILE_UNITS.keys())
def test_redaction_takes_linear_time_on_hostile_text(unit: str) -> None:
    text = (unit * (250_000 // len(unit) + 1))[:250_000]
    started = time.perf_counter()
    Redactor().text(text)
    assert time.perf_counter() - started < 2.0


def test_redaction_of_a_long_word_inside_json_values_is_fast_too() -> None:
    word = "x" * 250_000
    data = {"messages": [{"role": "user", "content": word}], "tool_calls": [{"output": {"note": word}}]}
    started = time.perf_counter()
    assert Redactor().value(data) == data
    assert time.perf_counter() - started < 2.0
