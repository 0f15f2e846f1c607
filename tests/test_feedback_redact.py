"""Redaction of secrets, emails, IBANs, card numbers and phone numbers in text and JSON; what must survive
it (a corpus of both sides); identifiers pseudonymised; linear time on hostile text."""

from __future__ import annotations

import time

import pytest

from agentslo.feedback.redact import Redactor, iban_ok, luhn_ok


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


# --- the corpus: what each kind removes, and what must survive every kind (issue 17: 8) ---

NBSP, NNBSP, EN_DASH = "\u00a0", "\u202f", "\u2013"

REDACTED = [
    # cards: any separator, Luhn-valid, inside other numbers
    (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111 ok", "card [CARD] ok"),
    (f"card 4111{NNBSP}1111{NNBSP}1111{NNBSP}1111", "card [CARD]"),
    ("card 4111/1111/1111/1111", "card [CARD]"),
    ("card 4111.1111.1111.1111", "card [CARD]"),
    (f"card 5555{EN_DASH}5555{EN_DASH}5555{EN_DASH}4444", "card [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("ref 12 4111 1111 1111 1111 thanks", "ref 12 [CARD] thanks"),
    ("card:6011111111111117,", "card:[CARD],"),
    # phones: non-breaking spaces, 00 prefix, brackets, national groupings
    (f"call +44{NBSP}20{NBSP}7946{NBSP}0958", "call [PHONE]"),
    ("call 0044 20 7946 0958", "call [PHONE]"),
    ("ruf 0049 30 12345678 an", "ruf [PHONE] an"),
    ("call +1 (415) 555-0100.", "call [PHONE]."),
    ("call +44 (0)20 7946 0958", "call [PHONE]"),
    ("tel 030/1234 5678", "tel [PHONE]"),
    ("portable 06 12 34 56 78", "portable [PHONE]"),
    ("call +1 415 555 0100 2024 ok", "call [PHONE] 2024 ok"),  # the number, not the year after it
    ("call 14155550100", "call [PHONE]"),
    # internationalised emails
    ("mail jürgen@exämple.de", "mail [EMAIL]"),
    ("用户@例子.广告 wrote", "[EMAIL] wrote"),
    ("josé.garcía@correo.es", "[EMAIL]"),
    ("иван@пример.рф", "[EMAIL]"),
    ("x@xn--80ak6aa92e.xn--p1ai", "[EMAIL]"),
    # IBANs: grouped, compact, any country of the registry
    ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [IBAN]."),
    ("iban GB82WEST12345698765432", "iban [IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
    (f"NL91{NBSP}ABNA{NBSP}0417{NBSP}1643{NBSP}00", "[IBAN]"),
    # secrets
    ("key sk-proj-abcdefghijklmnopqrstuvwx12", "key [SECRET]"),
    ("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "key [SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google [SECRET]"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [SECRET]"),
    ("stripe sk_live_abcdefghijklmnop1234", "stripe [SECRET]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [SECRET]"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt [SECRET]",
    ),
    ("Authorization: Bearer abcdef0123456789abcdef", "Authorization: Bearer [SECRET]"),
    ("password: hunter22", "password: [SECRET]"),
    ('{"client_secret": "zz9-top-secret"}', '{"client_secret": "[SECRET]"}'),
    ("export API_KEY=abcd1234efgh", "export API_KEY=[SECRET]"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "[SECRET]"),
]

# What must never be redacted: order ids, dates, times, amounts, versions and other everyday numbers.
KEPT = [
    "order A-1001 is late",
    "A-1001 B-2002 C-3003",
    "on 2024-01-15 at 10:30",
    "15/01/2024",
    "01/15/2024 09:00",
    "2024-01-15T10:30:00Z",
    "between 10:30 and 14:45",
    "refund of $1,234.56",
    "€100.000.000 budget",
    "12 345 678 units",
    "price 19.99 EUR",
    "1 234,56 €",
    "ts 1732248000",  # epoch seconds
    "epoch ms 1732248000123",
    "order 1234567812345678 is shipped",  # 16 digits failing Luhn: an order id
    "version 1.2.3",
    "order #123456, 3-5 business days",
    "call 555-0100",  # 7-digit local numbers are documented as kept
    "IP 192.168.100.200",
    "tracking 1Z999AA10123456784",
    "sku-20241115-0001",
    "DE89 is a code",
    "Password reset requested",
    "tokens: 1234",
    "the secret is safe",
    "email me later",
    "@handle on social",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED, ids=[t for t, _ in REDACTED])
def test_corpus_of_personal_data_and_secrets_is_redacted(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_corpus_of_ordinary_text_survives_every_kind(text: str) -> None:
    assert Redactor().text(text) == text


def test_iban_needs_its_checksum() -> None:
    assert Redactor.parse("iban").text("DE89 3704 0044 0532 0130 01") == "DE89 3704 0044 0532 0130 01"
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("ZZ89370400440532013000")  # not a registry country


def test_each_kind_is_its_own_switch() -> None:
    text = "sk-proj-abcdefghijklmnopqrstuvwx12 DE89370400440532013000"
    assert Redactor.parse("iban").text(text) == "sk-proj-abcdefghijklmnopqrstuvwx12 [IBAN]"
    assert Redactor.parse("secret").text(text) == "[SECRET] DE89370400440532013000"


# --- structured data: keys, numbers, values under keys that name a kind ---


def test_json_numbers_that_are_cards_or_phones_are_redacted_and_others_kept() -> None:
    data = {"card": 4111111111111111, "n": 4155550100, "f": 4111111111111111.0, "t": 1732248000}
    data |= {"amount": 1234.5, "qty": 3, "ok": True, "none": None}
    assert Redactor().value(data) == {
        "card": "[CARD]",
        "n": "[PHONE]",
        "f": "[CARD]",
        "t": 1732248000,
        "amount": 1234.5,
        "qty": 3,
        "ok": True,
        "none": None,
    }


def test_values_under_keys_that_name_a_kind_go_whole() -> None:
    data = {
        "phone": "555-0100",  # too short for the text rules; the key says what it is
        "customer_email": "bob at example dot com",
        "Mobile-Number": 5550100,
        "IBAN": "DE00 not checked",
        "cardNumber": "4111",
        "password": "correct horse battery staple",
        "credentials": {"user": "bob", "pin": 1234, "nested": ["a", {"b": "c"}]},
        "api_key": None,
        "emails_sent": 3,  # a key that merely mentions a kind keeps its value
        "tool": "get_order",
    }
    assert Redactor().value(data) == {
        "phone": "[PHONE]",
        "customer_email": "[EMAIL]",
        "Mobile-Number": "[PHONE]",
        "IBAN": "[IBAN]",
        "cardNumber": "[CARD]",
        "password": "[SECRET]",
        "credentials": {"user": "[SECRET]", "pin": "[SECRET]", "nested": ["[SECRET]", {"b": "[SECRET]"}]},
        "api_key": None,
        "emails_sent": 3,
        "tool": "get_order",
    }


def test_personal_data_in_keys_is_pseudonymised_so_keys_stay_distinct() -> None:
    redactor = Redactor(key=b"k")
    out = redactor.value({"bob@example.com": 1, "ann@example.com": 2, "plain": 3})
    keys = sorted(out)
    assert len(keys) == 3 and "plain" in keys
    assert all("@" not in k for k in keys) and sum(k.startswith("[EMAIL]~") for k in keys) == 2


def test_ident_is_stable_per_key_distinct_per_value_and_plain_when_nothing_is_personal() -> None:
    a, b = Redactor(key=b"store-a"), Redactor(key=b"store-b")
    assert a.ident("order-42") == "order-42"
    pseudonym = a.ident("u:bob@example.com")
    assert pseudonym.startswith("u:[EMAIL]~") and "bob" not in pseudonym
    assert a.ident("u:bob@example.com") == pseudonym  # the same id, the same pseudonym
    assert a.ident("u:ann@example.com") != pseudonym  # two ids stay two
    assert b.ident("u:bob@example.com") != pseudonym  # another store, another key
    assert a.ident(pseudonym) == pseudonym  # idempotent: a stored id maps to itself
