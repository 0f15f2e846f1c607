"""Deterministic head sampling: the same session is in or out of a judge's sample on every replica.

The decision hashes (judge name, judge version, session id), so replicas agree without coordination,
a re-sent session gets the same decision, different judges draw independent samples, and a new judge
version draws a fresh one.
"""

from __future__ import annotations

import hashlib

# 8 bytes of SHA-256 give 2**64 buckets: rates resolve far below any rate a spec can express.
_BUCKET_BYTES = 8
_BUCKETS = float(1 << (8 * _BUCKET_BYTES))


def sample_point(session_id: str, judge_name: str, judge_version: str) -> float:
    """The session's position in [0, 1) for this judge version; sampled when below the rate."""
    digest = hashlib.sha256(f"{judge_name}\x00{judge_version}\x00{session_id}".encode()).digest()
    return int.from_bytes(digest[:_BUCKET_BYTES], "big") / _BUCKETS


def sampled(session_id: str, judge_name: str, judge_version: str, rate: float) -> bool:
    """Whether this judge version judges this session at `rate` (0 never, 1 always)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return sample_point(session_id, judge_name, judge_version) < rate
