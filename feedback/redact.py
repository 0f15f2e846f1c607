"""Redaction of personal data before a session is stored: emails, phone numbers and card numbers.

Card numbers are 13-19 digits (spaces or dashes allowed between groups) that pass the Luhn check, so
order ids and timestamps survive; phone numbers are international (`+` and 8-15 digits) or
formatted national numbers (groups separated by spaces, dots, dashes or a parenthesised area code).
Redaction errs on the side of removing: a number that looks like a phone number goes.

Every pattern runs on RE2, so redaction takes time linear in the text whatever it holds (Python's
backtracking `re` took quadratic time on one long word: a 250,000-character one froze an exporter for
43 s). RE2 has no lookarounds, so each pattern captures its candidate in group 1 and consumes the
character after it; the character before it is checked here.

    >>> Redactor().text("mail bob@example.com or call +1 415-555-0100")
    'mail [EMAIL] or call [PHONE]'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import re2

EMAIL: Final = "email"
PHONE: Final = "phone"
CARD: Final = "card"
KINDS: Final = (EMAIL, PHONE, CARD)

_EMAIL_RE = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Candidate card numbers: 13-19 digits, optionally grouped by single spaces or dashes; not preceded by a
# digit or a dash (checked in code), not followed by a digit.
_CARD_RE = re2.compile(r"(\d(?:[ -]?\d){12,18})(?:\D|$)")
_CARD_NOT_AFTER = frozenset("0123456789-")
_PHONE_RES = (
    # International: +CC then digits with optional separators.
    re2.compile(r"(\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5})(?:\W|$)"),
    # National, formatted: (415) 555-0100, 415-555-0100, 415.555.0100, 020 7946 0958.
    re2.compile(r"((?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{3,4}[ .-]?\d{3,4})(?:\W|$)"),
    # Unformatted 10-11 digit numbers (US/UK national numbers written solid).
    re2.compile(r"(\d{10,11})(?:\W|$)"),
)
# Digit counts a phone number can have (E.164 allows at most 15; 7 is the shortest common local number).
_PHONE_DIGITS = range(7, 16)


def _word_or_plus(ch: str) -> bool:
    return ch.isalnum() or ch in "_+"


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _substitute(
    pattern: Any, text: str, token: str, accept: Callable[[str], bool], not_after: Callable[[str], bool]
) -> str:
    """Replace group 1 of each match of `pattern` with `token` when `accept(candidate)` holds and the
    character before it is not `not_after` (the lookbehind RE2 does not have). One pass, linear."""
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        start, end = m.span(1)
        if start > 0 and not_after(text[start - 1]):
            continue
        if accept(text[start:end]):
            out += (text[last:start], token)
            last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _is_card(candidate: str) -> bool:
    digits = "".join(c for c in candidate if c.isdigit())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_phone(candidate: str) -> bool:
    return sum(c.isdigit() for c in candidate) in _PHONE_DIGITS


def _redact_cards(text: str, token: str) -> str:
    return _substitute(_CARD_RE, text, token, _is_card, _CARD_NOT_AFTER.__contains__)


def _redact_phones(text: str, token: str) -> str:
    for pattern in _PHONE_RES:
        text = _substitute(pattern, text, token, _is_phone, _word_or_plus)
    return text


@dataclass(frozen=True)
class Redactor:
    """Replaces each enabled kind of personal data with a `[KIND]` token; `kinds=()` turns it off."""

    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kind(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> Redactor:
        """From a config value: `"email,phone,card"`, `"all"`, or `"none"`/empty to turn redaction off."""
        if value is None:
            return cls()
        items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
        items = [v for v in items if v]
        if items in ([], ["none"], ["off"]):
            return cls(())
        if items == ["all"]:
            return cls()
        return cls(tuple(items))

    def text(self, text: str) -> str:
        # Cards first: a card number would otherwise be half-eaten by the phone patterns.
        if CARD in self.kinds:
            text = _redact_cards(text, "[CARD]")
        if EMAIL in self.kinds and "@" in text:
            text = _EMAIL_RE.sub("[EMAIL]", text)
        if PHONE in self.kinds:
            text = _redact_phones(text, "[PHONE]")
        return text

    def value(self, value: Any) -> Any:
        """Redact every string inside JSON-like data (dict keys are left alone: they are field names)."""
        if not self.kinds:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
