"""The session store: redaction before writing, retention time and size limits in the right order,
the review queue, labels and agreement, and what survives a reopen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentslo.feedback.store import ReviewRecord, SessionRecord, SessionStore

DAY = 86_400.0


def record(
    sid: str,
    *,
    bad: dict[str, tuple[int, float]] | None = None,
    t: float = 1000.0,
    text: str = "hello",
    **kw: Any,
) -> SessionRecord:
    body = {"session_id": sid, "messages": [{"role": "user", "content": text}]}
    return SessionRecord(
        sid, "cx-support", kw.pop("flow", "refund"), t, body, sampled=not bad, bad_slos=bad or {}, **kw
    )


def review(
    sid: str, judge: str = "faithfulness", *, passed: bool = False, score: float = 0.2
) -> ReviewRecord:
    return ReviewRecord(sid, judge, "3", score, passed, "because", not passed)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    s = SessionStore(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_bodies_explanations_and_notes_are_redacted(store: SessionStore, tmp_path: Path) -> None:
    store.add(
        [record("a", text="mail me at bob@example.com")],
        [ReviewRecord("a", "faithfulness", "3", 0.1, False, "quotes bob@example.com", True)],
    )
    item = store.reviews()[0]
    store.label(item["id"], "correct", "ann", "called +44 20 7946 0958")
    assert store.session("a")["session"]["messages"][0]["content"] == "mail me at [EMAIL]"
    labelled = store.review(item["id"])
    assert labelled["explanation"] == "quotes [EMAIL]" and labelled["note"] == "called [PHONE]"


def test_redaction_can_be_turned_off(tmp_path: Path) -> None:
    from agentslo.feedback.redact import Redactor

    s = SessionStore(str(tmp_path / "raw.db"), redactor=Redactor.parse("none"))
    s.add([record("a", text="bob@example.com")])
    assert s.session("a")["session"]["messages"][0]["content"] == "bob@example.com"
    s.close()


def test_retention_time_drops_unlabelled_then_labelled(store: SessionStore) -> None:
    store.add([record("old"), record("kept", bad={"task-success": (1, 3.3)})], [review("kept")])
    store.label(store.reviews()[0]["id"], "real_failure", None, None)
    now = time.time()
    assert store.prune(now + 1 * DAY) == 0
    assert store.prune(now + 8 * DAY) == 1  # a week: the unlabelled session goes
    assert store.session("old") is None and store.session("kept") is not None
    assert store.prune(now + 91 * DAY) == 1  # labelled ones live 90 days
    assert store.count() == 0 and store.reviews(status="all") == []  # reviews went with their session


def test_size_limit_drops_unflagged_first_then_flagged_then_labelled(store: SessionStore) -> None:
    big = "x" * 1000
    store.add([record("sampled-1", text=big), record("sampled-2", text=big)])
    store.add([record("flagged-1", bad={"task-success": (1, 3.3)}, text=big)])
    store.add([record("labelled-1", bad={"task-success": (1, 3.3)}, text=big)], [review("labelled-1")])
    store.label(store.reviews(judge="faithfulness")[0]["id"], "correct", None, None)
    sizes = dict(store.db.execute("SELECT session_id, size FROM sessions").fetchall())
    store.max_bytes = store.total_bytes - sizes["sampled-1"]
    assert store.prune() == 1
    assert store.session("sampled-1") is None and store.session("sampled-2") is not None
    store.max_bytes = sizes["labelled-1"]
    assert store.prune() == 2
    assert [store.session(s) is not None for s in ("sampled-2", "flagged-1", "labelled-1")] == [
        False,
        False,
        True,
    ]
    assert store.total_bytes <= store.max_bytes


def test_review_queue_lists_flagged_first_and_filters(store: SessionStore) -> None:
    store.add([record("a"), record("b")], [review("a", passed=True, score=0.9), review("b")])
    store.add(
        [record("c", bad={"task-success": (1, 3.3)})],
        [ReviewRecord("c", "", "", None, None, "bad for task-success", True)],
    )
    queue = store.reviews()
    assert [i["flagged"] for i in queue] == [True, True, False]
    assert {i["session_id"] for i in queue[:2]} == {"b", "c"}
    assert [i["session_id"] for i in store.reviews(judge="faithfulness")] == ["b", "a"]
    sli_item = next(i for i in queue if i["session_id"] == "c")
    assert sli_item["judge"] is None and sli_item["explanation"] == "bad for task-success"


def test_labels_are_validated_and_unknown_ids_refused(store: SessionStore) -> None:
    store.add([record("a")], [review("a")])
    with pytest.raises(ValueError, match="not one of"):
        store.label(store.reviews()[0]["id"], "wrong", None, None)
    with pytest.raises(KeyError):
        store.label(999, "correct", None, None)


def test_label_agreement_follows_what_humans_said(store: SessionStore) -> None:
    store.add(
        [record(s) for s in "abcd"],
        [review("a"), review("b"), review("c", passed=True, score=0.9), review("d")],
    )
    ids = {i["session_id"]: i["id"] for i in store.reviews(status="all")}
    store.label(ids["a"], "correct", None, None)  # judge failed it, rightly
    store.label(ids["b"], "false_positive", None, None)  # judge failed it, wrongly
    store.label(ids["c"], "real_failure", None, None)  # judge passed it, wrongly
    store.label(ids["d"], "edge_case", None, None)  # says nothing: left out
    assert store.label_agreement("cx-support", "faithfulness", "3") == (pytest.approx(1 / 3), 3)
    assert store.label_agreement("cx-support", "faithfulness", "4") is None


def test_bad_sessions_by_slo_and_window_rank_by_burn(store: SessionStore) -> None:
    store.add(
        [
            record("a", bad={"task-success": (1, 3.3)}, t=100.0),
            record("b", bad={"task-success": (1, 10.0)}, t=200.0),
            record("c", bad={"refund-policy": (1, 200.0)}, t=200.0),
        ]
    )
    assert store.add_verdict(review("a"), {"task-success": (1, 3.3)})
    rows = store.bad_sessions("task-success", since=50.0)
    assert [(r["session_id"], r["burn"], r["bad_events"]) for r in rows] == [("b", 10.0, 1), ("a", 6.6, 2)]
    assert [r["session_id"] for r in store.bad_sessions("task-success", since=150.0)] == ["b"]
    assert not store.add_verdict(review("never-stored"), {})


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = SessionStore(path)
    s.add([record("a", bad={"task-success": (1, 3.3)})], [review("a")])
    s.set_agreement("cx-support", "faithfulness", "3", 0.9, 40, "calibrate")
    size = s.total_bytes
    s.close()
    s = SessionStore(path)
    assert s.total_bytes == size and s.session("a")["flagged"] is True
    assert s.agreements()[0]["ratio"] == 0.9 and len(s.reviews()) == 1
    assert s.add([record("a")]) == 0  # a stored session is never stored twice
    s.close()


def test_ids_and_grouping_columns_are_pseudonymised_yet_still_join(tmp_path: Path) -> None:
    path = str(tmp_path / "ids.db")
    s = SessionStore(path)
    raw_id = "chat:bob@example.com"
    rec = record(
        raw_id, bad={"task-success": (1, 3.3)}, version="build +44 20 7946 0958", tool="t-4111111111111111"
    )
    s.add([rec], [review(raw_id)])
    assert s.has(raw_id)  # callers keep using the id they were given
    assert s.add_verdict(review(raw_id, "tone"), {"task-success": (1, 1.0)})
    stored = s.session(raw_id)
    assert stored is not None
    sid = stored["session_id"]
    assert sid.startswith("chat:[EMAIL]~") and stored["session"]["session_id"] == sid
    assert stored["version"].startswith("build [PHONE]~") and stored["tool"].startswith("t-[CARD]~")
    row = s.bad_sessions("task-success", since=0.0)[0]
    assert (row["session_id"], row["bad_events"]) == (sid, 2)
    assert {r["session_id"] for r in s.reviews()} == {sid}
    s.close()
    reopened = SessionStore(path)  # the key is kept with the data: the same pseudonyms after a restart
    assert reopened.has(raw_id) and reopened.session(raw_id)["session_id"] == sid  # type: ignore[index]
    reopened.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for value in (b"bob@example.com", b"7946 0958", b"4111111111111111"):
        assert value not in raw, value


def test_distinct_ids_with_the_same_personal_shape_stay_distinct(store: SessionStore) -> None:
    store.add([record("bob@example.com"), record("ann@example.com")])
    assert store.count() == 2


def test_reviewer_names_are_redacted_like_notes(store: SessionStore) -> None:
    store.add([record("a")], [review("a")])
    item = store.reviews()[0]
    assert store.label(item["id"], "correct", "ann@example.com", None)["reviewer"] == "[EMAIL]"
