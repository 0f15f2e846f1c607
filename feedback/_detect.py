"""What each kind of personal data looks like in text: RE2 patterns, checksums and the decisions
on their candidates. `agentslo.feedback.redact` applies them (and documents what each covers).

Every pattern runs on RE2, so finding candidates takes time linear in the text whatever it holds
(Python's backtracking `re` took quadratic time on one long word: a 250,000-character one froze an
exporter for 43 s). RE2 has no lookarounds: each pattern captures its candidate in group 1 and
consumes the character after it, and the character before it is checked in code. Deciding on a
candidate looks at that candidate alone (a few dozen characters), so the whole stays linear.

    >>> replace_phones(replace_cards("card 4111 1111 1111 1111, call +44 20 7946 0958"))
    'card [CARD], call [PHONE]'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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


def _whole(token: str) -> Decide:
    def decide(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
        return ((start, end, token),)

    return decide


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


def key_kind(key: str) -> str | None:
    """The kind a JSON key names (`phone`, `customer_email`, `api_key`, ...), or None."""
    norm = _norm_key(key)
    if norm in _KEY_KINDS:
        return _KEY_KINDS[norm]
    if norm.endswith("email"):
        return EMAIL
    if norm.endswith("phone"):
        return PHONE
    return None


# --- one function per kind: the text with that kind replaced by its token ---


def replace_secrets(text: str) -> str:
    text = _substitute(_PREFIXED_TOKEN_RE, text, _whole(TOKENS[SECRET]))
    if "PRIVATE KEY-----" in text:
        text = _substitute(_PEM_RE, text, _whole(TOKENS[SECRET]))
    text = _substitute(_AUTH_HEADER_RE, text, _whole(TOKENS[SECRET]))
    if ":" in text or "=" in text:
        text = _substitute(_NAMED_SECRET_RE, text, _whole(TOKENS[SECRET]))
    return text


def replace_emails(text: str) -> str:
    return _substitute(_EMAIL_RE, text, _whole(TOKENS[EMAIL])) if "@" in text else text


def replace_ibans(text: str) -> str:
    return _substitute(_IBAN_RE, text, _ibans)


def replace_cards(text: str) -> str:
    return _substitute(_CARD_RE, text, _cards)


def replace_phones(text: str) -> str:
    if "+" in text or "00" in text:
        text = _substitute(_INTL_PHONE_RE, text, _international_phone)
    for pattern in _NATIONAL_PHONE_RES:
        text = _substitute(pattern, text, _national_phone)
    return text


# Each kind's function, in the order text is redacted; the number kinds only run on text with digits.
DETECTORS: Final[dict[str, Callable[[str], str]]] = {
    SECRET: replace_secrets,
    EMAIL: replace_emails,
    IBAN: replace_ibans,
    CARD: replace_cards,
    PHONE: replace_phones,
}
NUMBER_KINDS: Final = frozenset((IBAN, CARD, PHONE))
