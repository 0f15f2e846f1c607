"""Redaction of personal data and secrets before a session is stored.

What each kind removes (a `[KIND]` token replaces it), and what it deliberately leaves:

- `secret`: API keys and tokens by their published prefixes (OpenAI and Anthropic `sk-…`, Stripe
  `sk_live_…`/`rk_…`, AWS `AKIA…`/`ASIA…`, Google `AIza…`, GitHub `ghp_…`/`github_pat_…`, GitLab
  `glpat-…`, Slack `xox?-…`, Hugging Face `hf_…`), JWTs (`eyJ….eyJ….…`), PEM private keys,
  `Bearer`/`Basic` credentials, and the value (6+ characters) after a secret's name
  (`password: …`, `api_key=…`, `"token": "…"`). Left: a secret with no known prefix and no name
  before it (a bare random string cannot be told from an id).
- `email`: `local@domain.tld` in any script (`jürgen@exämple.de`, `用户@例子.广告`, punycode TLDs).
  Left: obfuscated forms (`bob at example dot com`), domains without a dot.
- `iban`: IBANs of the registry's countries, compact or grouped by any separator, with the
  country's length and a valid mod-97 check. Left: strings failing the checksum.
- `card`: 13-19 digits starting with 2-6 (the payment networks' ranges) that pass the Luhn check,
  solid or in groups of 3-6 digits separated by spaces (any Unicode space), dashes, dots or slashes.
  Left: order ids and other digit runs failing Luhn, numbers starting with 0, 1, 7, 8 or 9.
- `phone`: international numbers (`+` or `00`, then digits, separators and brackets) that
  libphonenumber (`phonenumbers`) finds possible for their country code; national numbers written in
  groups (`(415) 555-0100`, `415.555.0100`, `020 7946 0958`, `030/1234 5678`, `06 12 34 56 78`);
  solid 10-11 digit North American (`4155550100`) and 0-prefixed national numbers. Left: 7-digit
  local numbers (`555-0100`), numbers grouped like thousands (`100 000 000`, and so also the
  Spanish-style `612 345 678`), epoch timestamps (`1732248000`).

Dates, times, amounts, versions, IP addresses and order ids such as `A-1001` are kept by every kind
(the tests hold a corpus of both sides).

Structured data (`Redactor.value`) is walked whole: every string is redacted as text; integers (and
integral floats) are redacted when their digits are a card or phone number (`{"phone": 4155550100}`);
object keys are redacted too (pseudonymised, so distinct keys stay distinct); and a value under a
key that names a kind (`email`, `phone`, `mobile`, `iban`, `card_number`, `password`, `token`,
`api_key`, `cvv`, `ssn`, ... and any key ending in `email` or `phone`) is replaced whole, whatever
its shape, since the key says what it is. Booleans, `null` and other numbers are kept.

Identifiers (`Redactor.ident`: session ids, and the store's version, model, tool and failure mode
columns) are pseudonymised rather than blanked: the personal part is replaced as in text and a keyed
digest of the original is appended (`user-[EMAIL]~5c1f0e6a9b3d`), so two ids stay two ids and the
same id maps to the same pseudonym in one store (the key is the store's own). This is
pseudonymisation: whoever holds both the store and its key can test a guess.

Redaction errs on the side of removing within each kind, and takes time linear in the text whatever
the text holds: the patterns (`agentslo.feedback._detect`) run on RE2, not on Python's backtracking
`re`, which took quadratic time on one long word (a 250,000-character one froze an exporter for 43 s).

    >>> Redactor().text("mail bob@example.com or call +1 415-555-0100")
    'mail [EMAIL] or call [PHONE]'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from agentslo.feedback._detect import (
    CARD,
    DETECTORS,
    EMAIL,
    IBAN,
    KINDS,
    NUMBER_KINDS,
    PHONE,
    SECRET,
    TOKENS,
    iban_ok,
    key_kind,
    luhn_ok,
)

_IDENT_DIGEST_BYTES: Final = 6  # 12 hex digits: collisions among one store's ids are negligible


@dataclass(frozen=True)
class Redactor:
    """Replaces each enabled kind of personal data with a `[KIND]` token; `kinds=()` turns it off.

    `key` keys the digest `ident` appends to pseudonymised identifiers (the store passes its own).
    """

    kinds: tuple[str, ...] = KINDS
    key: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kind(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> Redactor:
        """From a config value: kinds such as `"email,phone,card"`, `"all"`, or `"none"`/empty for off."""
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
        """The text with every enabled kind replaced by its token (secrets first: their digits would
        otherwise be read as numbers; IBANs before cards and phones: an IBAN holds digit groups)."""
        if not self.kinds or not text:
            return text
        has_digit = any(c in text for c in "0123456789")
        for kind, detect in DETECTORS.items():
            if kind in self.kinds and (has_digit or kind not in NUMBER_KINDS):
                text = detect(text)
        return text

    def ident(self, value: str) -> str:
        """An identifier with its personal parts replaced and, when any was, a keyed digest of the
        original appended, so distinct identifiers stay distinct (see the module's docstring)."""
        redacted = self.text(value)
        if redacted == value:
            return value
        digest = hashlib.blake2b(value.encode(), key=self.key[:64], digest_size=_IDENT_DIGEST_BYTES)
        return f"{redacted}~{digest.hexdigest()}"

    def value(self, value: Any) -> Any:
        """Redact JSON-like data: strings, keys, numbers that are card or phone numbers, and whatever
        sits under a key that names a kind (see the module's docstring)."""
        if not self.kinds:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                kind = key_kind(k) if isinstance(k, str) else None
                key = self.ident(k) if isinstance(k, str) else k
                out[key] = self._whole(v, kind) if kind in self.kinds else self.value(v)
            return out
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e19):
            digits = str(int(value))
            redacted = self.text(digits)
            return value if redacted == digits else redacted
        return value

    def _whole(self, value: Any, kind: str | None) -> Any:
        """A value under a key that names `kind`: scalars become the kind's token; under a secret's
        key everything does, elsewhere containers are walked as usual."""
        assert kind is not None
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, str | int | float):
            return TOKENS[kind]
        if kind == SECRET:
            if isinstance(value, dict):
                return {
                    self.ident(k) if isinstance(k, str) else k: self._whole(v, kind) for k, v in value.items()
                }
            if isinstance(value, list | tuple):
                return [self._whole(v, kind) for v in value]
        return self.value(value)


__all__ = ["CARD", "EMAIL", "IBAN", "KINDS", "PHONE", "SECRET", "TOKENS", "Redactor", "iban_ok", "luhn_ok"]
