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

Redaction errs on the side of removing within each kind. Every pattern runs on RE2, so it takes
time linear in the text whatever the text holds (Python's backtracking `re` took quadratic time on
one long word: a 250,000-character one froze an exporter for 43 s). RE2 has no lookarounds: each
pattern captures its candidate in group 1 and consumes the character after it, and the character
before it is checked here.

    >>> Redactor().text("mail bob@example.com or call +1 415-555-0100")
    'mail [EMAIL] or call [PHONE]'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import phonenumbers
import re2

SECRET: Final = "secret"
EMAIL: Final = "email"
IBAN: Final = "iban"
CARD: Final = "card"
PHONE: Final = "phone"
# In the order text is redacted: secrets first (their digits would otherwise be read as numbers),
# IBANs before cards and phones (an IBAN holds long digit groups).
KINDS: Final = (SECRET, EMAIL, IBAN, CARD, PHONE)
TOKENS: Final = {kind: f"[{kind.upper()}]" for kind in KINDS}

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

# One separator between digit groups: any Unicode space (no-break, thin, ...), any dash, a dot, a
# slash, or a tab.
_SEP = r"[\t\p{Zs}\p{Pd}./]"


def _re(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


# --- secrets ---

_PREFIXED_TOKEN_RE = _re(
    r"\b((?:sk-[A-Za-z0-9_\-]{20,}"  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[A-Z0-9]{16}"  # AWS key ids
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*))"  # JWT: {"…}.{"…}.signature
)
_PEM_RE = _re(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----)")
_AUTH_HEADER_RE = _re(r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/\-]{16,}=*)")
# The value after a secret's name: `password: hunter22`, `api_key=…`, `"client_secret": "…"`.
_NAMED_SECRET_RE = _re(
    r"(?i)(?:(?:api|access|secret|private|auth|account|client|signing|encryption)[_\-]?key|api[_\-]?secret"
    r"|client[_\-]?secret|secret|(?:access|refresh|auth|id|session|bearer)?[_\-]?token"
    r"|passw(?:or)?d|passphrase|pwd|credentials?)"
    r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;&]{6,})"
)

# --- emails, IBANs, cards, phones ---

_EMAIL_RE = _re(
    r"([\p{L}\p{N}\p{M}._%+\-]+@[\p{L}\p{N}\p{M}\-]+(?:\.[\p{L}\p{N}\p{M}\-]+)*"
    r"\.(?:xn--[a-z0-9\-]+|[\p{L}\p{M}]{2,}))"
)
_IBAN_RE = _re(r"(?i)\b([a-z]{2}[0-9]{2}(?:" + _SEP + r"?[a-z0-9]){11,32})")
# Card numbers: solid, or groups of 3-6 digits (4-4-4-4, 4-6-5, ...); the Luhn check decides.
_CARD_RE = _re(r"([0-9]{13,19}|[0-9]{3,6}(?:" + _SEP + r"[0-9]{3,6}){1,5})(?:[^0-9]|$)")
# International: + or 00, then 7-17 digits, each optionally after a separator or a bracket.
_INTL_PHONE_RE = _re(
    r"((?:\+|00)[1-9](?:(?:" + _SEP + r"|" + _SEP + r"?\(|\)" + _SEP + r"?)?[0-9]){6,16})(?:[^0-9A-Za-z]|$)"
)
_NATIONAL_PHONE_RES = (
    # Groups: (415) 555-0100, 415-555-0100, 415.555.0100, 020 7946 0958, 030/1234 5678.
    _re(
        r"((?:\([0-9]{2,5}\)" + _SEP + r"?|[0-9]{2,5}" + _SEP + r")[0-9]{3,4}" + _SEP + r"?[0-9]{3,4})"
        r"(?:[^0-9A-Za-z]|$)"
    ),
    # Pairs: 06 12 34 56 78, 01.23.45.67.89.
    _re(r"(0[1-9](?:" + _SEP + r"[0-9]{2}){4})(?:[^0-9A-Za-z]|$)"),
    # Solid: North American 10/11 digits (area code and exchange never start with 0 or 1, so epoch
    # seconds do not match), or a 0-prefixed national number of 10-11 digits.
    _re(r"((?:1?[2-9][0-9]{2}[2-9][0-9]{6}|0[1-9][0-9]{8,9}))(?:[^0-9A-Za-z]|$)"),
)
_DIGITS = re.compile(r"[0-9]+")

# Digit counts a phone number can have (E.164 allows at most 15; 7 is the shortest common local number).
_PHONE_DIGITS = range(7, 16)
_CARD_DIGITS = range(13, 20)
_CARD_FIRST_DIGITS = frozenset("23456")  # Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6

# IBAN length per country (the SWIFT IBAN registry).
IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Keys whose value is replaced whole (compared lower-case, without `_`, `-`, `.` or spaces).
_SECRET_KEYS = frozenset(
    "password passwd pwd passphrase secret clientsecret apisecret apikey accesskey secretkey privatekey "
    "accountkey signingkey token accesstoken refreshtoken idtoken authtoken sessiontoken bearertoken "
    "authorization credentials credential cvv cvc cvv2 pin ssn".split()
)
_KEY_KINDS = {
    **{k: EMAIL for k in ("mail", "emailaddress")},
    **{k: PHONE for k in ("mobile", "tel", "telephone", "msisdn", "fax", "phonenumber", "mobilenumber")},
    **{k: CARD for k in ("cardnumber", "creditcard", "creditcardnumber", "ccnumber", "pan", "cardno")},
    "iban": IBAN,
    **{k: SECRET for k in _SECRET_KEYS},
}
_IDENT_DIGEST_BYTES = 6  # 12 hex digits: collisions among one store's ids are negligible


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """The IBAN's length for its country and its mod-97 check (ISO 13616)."""
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@lru_cache(maxsize=4096)
def _possible_phone(digits: str) -> bool:
    """Whether libphonenumber finds `+digits` a possible number for its country code."""
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse("+" + digits, None)))
    except phonenumbers.NumberParseException:
        return False


# --- the one pass each pattern makes ---

# A decision on a candidate: the (start, end, token) spans to replace within it, relative to the text.
Decide = Callable[[str, int, int], Iterable[tuple[int, int, str]]]


def _substitute(pattern: Any, text: str, decide: Decide) -> str:
    """Replace what `decide` picks in each match (group 1) of `pattern`. One pass, linear in `text`."""
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        start, end = m.span(1)
        for a, b, token in decide(text, start, end):
            if a >= last:
                out += (text[last:a], token)
                last = b
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _whole(token: str, not_after: Callable[[str], bool] | None = None) -> Decide:
    def decide(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
        if not_after is not None and start > 0 and not_after(text[start - 1]):
            return ()
        return ((start, end, token),)

    return decide


def _alnum_or(chars: str) -> Callable[[str], bool]:
    return lambda ch: ch.isalnum() or ch in chars


def _groups(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the digit runs in text[start:end] (a candidate: a few dozen characters at most).
    Python's `re` is fine here: `[0-9]+` cannot backtrack, and it is cheaper than RE2 per call."""
    return [m.span() for m in _DIGITS.finditer(text, start, end)]


def _cards(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    groups = _groups(text, start, end)
    # A candidate that starts inside a longer digit run: that run's tail is not part of a card.
    i = 1 if start > 0 and text[start - 1].isdigit() else 0
    while i < len(groups):
        # The longest run of whole groups from group i that is a card number.
        for j in range(len(groups), i, -1):
            digits = "".join(text[a:b] for a, b in groups[i:j])
            if len(digits) in _CARD_DIGITS and digits[0] in _CARD_FIRST_DIGITS and luhn_ok(digits):
                yield groups[i][0], groups[j - 1][1], TOKENS[CARD]
                i = j
                break
        else:
            i += 1


def _ibans(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    length = IBAN_LENGTHS.get(text[start : start + 2].upper())
    if length is None:
        return ()
    chars = [i for i in range(start, end) if text[i].isalnum()]
    if len(chars) < length:
        return ()
    stop = chars[length - 1] + 1
    if stop < len(text) and text[stop].isalnum():  # it must end where the IBAN ends
        return ()
    if not iban_ok("".join(text[c] for c in chars[:length])):
        return ()
    return ((start, stop, TOKENS[IBAN]),)


def _international_phone(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+_"):
        return ()
    prefix = 1 if text[start] == "+" else 2
    groups = _groups(text, start + prefix, end)
    # Greedy matching may have taken a following number's groups too: the longest possible number wins.
    for j in range(len(groups), 0, -1):
        digits = "".join(text[a:b] for a, b in groups[:j])
        if len(digits) < _PHONE_DIGITS.start:
            break
        if len(digits) in _PHONE_DIGITS and _possible_phone(digits):
            stop = groups[j - 1][1]
            if stop < end and text[stop] == ")":
                stop += 1
            return ((start, stop, TOKENS[PHONE]),)
    return ()


def _national_phone(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+_"):
        return ()
    groups = _groups(text, start, end)
    digits = sum(b - a for a, b in groups)
    if digits not in _PHONE_DIGITS:
        return ()
    if len(groups) >= 3 and text[start] != "(" and _like_thousands(text, groups):
        return ()
    return ((start, end, TOKENS[PHONE]),)


def _like_thousands(text: str, groups: list[tuple[int, int]]) -> bool:
    """1-3 digits, then groups of exactly 3 after one repeated separator: an amount (100 000 000)."""
    first, rest = groups[0], groups[1:]
    separators = {text[a:c] for (_, a), (c, _) in zip(groups, rest, strict=False)}
    return first[1] - first[0] <= 3 and all(b - a == 3 for a, b in rest) and len(separators) == 1


def _norm_key(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum())


def _key_kind(key: str) -> str | None:
    norm = _norm_key(key)
    if norm in _KEY_KINDS:
        return _KEY_KINDS[norm]
    if norm.endswith("email"):
        return EMAIL
    if norm.endswith("phone"):
        return PHONE
    return None


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
        kinds = self.kinds
        if not kinds or not text:
            return text
        has_digit = any(c in text for c in "0123456789")
        if SECRET in kinds:
            text = _substitute(_PREFIXED_TOKEN_RE, text, _whole(TOKENS[SECRET]))
            if "PRIVATE KEY-----" in text:
                text = _substitute(_PEM_RE, text, _whole(TOKENS[SECRET]))
            text = _substitute(_AUTH_HEADER_RE, text, _whole(TOKENS[SECRET]))
            if ":" in text or "=" in text:
                text = _substitute(_NAMED_SECRET_RE, text, _whole(TOKENS[SECRET]))
        if EMAIL in kinds and "@" in text:
            text = _substitute(_EMAIL_RE, text, _whole(TOKENS[EMAIL]))
        if not has_digit:
            return text
        if IBAN in kinds:
            text = _substitute(_IBAN_RE, text, _ibans)
        if CARD in kinds:
            text = _substitute(_CARD_RE, text, _cards)
        if PHONE in kinds:
            if "+" in text or "00" in text:
                text = _substitute(_INTL_PHONE_RE, text, _international_phone)
            for pattern in _NATIONAL_PHONE_RES:
                text = _substitute(pattern, text, _national_phone)
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
                kind = _key_kind(k) if isinstance(k, str) else None
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
