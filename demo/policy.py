"""The demo CX agent's policy: which tool to call next and what to answer, from the conversation.

Pure functions, so the policy is testable without HTTP: `plan(flow, users, recent, earlier, conv)`
returns the next `Action` (a tool call, or an answer that may finish the task). `conv` carries the
seeded fault decisions (`demo.faults.simulate`): a wrong first tool, a failed task, the
hallucinated refund window, a missed or misrouted escalation. `backend` is the fake CX backend used
when the caller declares no tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from agentslo.demo.faults import CORRECT_REFUND_WINDOW, HALLUCINATED_REFUND_WINDOW, Conversation
from agentslo.spec import Spec

REFUND_POLICY_DAYS: Final = 30
POLICY_TODAY: Final = date(2026, 11, 22)  # the policy clock, fixed: example orders keep their side of it
# The fake backend used when the caller declares no tools.
ORDERS: Final = {
    "A-1001": {"order_id": "A-1001", "status": "delivered", "delivered_on": "2026-11-12", "total_usd": 49.90},
    "B-2002": {
        "order_id": "B-2002",
        "status": "delivered",
        "delivered_on": "2026-08-20",
        "total_usd": 120.00,
    },
    "C-3003": {
        "order_id": "C-3003",
        "status": "shipped",
        "carrier": "UPS",
        "tracking": "1Z999AA10123456784",
        "eta": "2026-11-25",
    },
}
_ORDER_RE: Final = re.compile(r"\b([A-Z]-?\d{4})\b")
_EMAIL_RE: Final = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
ESCALATE_RE: Final = re.compile(r"(?i)\b(human|person|supervisor|manager|tier 2|complaint)\b")
FLOW_KEYWORDS: Final = (
    ("refund", re.compile(r"(?i)refund|return|money back")),
    ("password-reset", re.compile(r"(?i)password|log ?in|locked out")),
    ("order-status", re.compile(r"(?i)order|where is|tracking|deliver")),
)


@dataclass
class Action:
    """The agent's next step: call a tool, or answer (`done` when the answer completes a task)."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    done: bool = False


def classify_flow(spec: Spec, texts: list[str]) -> str:
    for text in texts:
        for flow, pattern in FLOW_KEYWORDS:
            if flow in spec.flows and pattern.search(text):
                return flow
    return next(iter(spec.flows))


def _order_id(texts: list[str]) -> str | None:
    for text in reversed(texts):
        if m := _ORDER_RE.search(text):
            raw = m.group(1)
            return raw if "-" in raw else f"{raw[0]}-{raw[1:]}"
    return None


def plan(
    flow: str,
    users: list[str],
    recent: list[tuple[str, Any]],
    earlier: list[tuple[str, Any]],
    conv: Conversation,
) -> Action:
    """The CX policy for one step: `users` are the user's messages so far, `recent` the tool results
    since the last of them, `earlier` those before. `conv` carries the seeded fault decisions."""
    last = users[-1]
    called = [name for name, _ in recent]
    wrong = next((c.tool for c in conv.tool_calls if c.outcome == "wrong_tool"), None)
    if wrong and not called and not earlier:
        return Action(tool=wrong, arguments={"order_id": _order_id(users) or "unknown"})
    if ESCALATE_RE.search(last) and conv.escalated:
        queue = "our Tier 2 team" if conv.context_preserved else "our support team"
        return Action(text=f"I've passed your case to {queue}; they will contact you shortly.", done=True)
    if conv.outcome in ("failure", "abandoned") and not called:
        return Action(
            text="I'm sorry, I couldn't complete that right now. Please try again later.", done=True
        )
    last_result = recent[-1][1] if recent else None
    if flow == "password-reset":
        email = next((m.group(0) for u in reversed(users) if (m := _EMAIL_RE.search(u))), None)
        if email is None:
            return Action(text="I can help with that. Please confirm the email address on your account.")
        if "reset_password" not in called:
            return Action(tool="reset_password", arguments={"email": email})
        if isinstance(last_result, dict) and last_result.get("sent"):
            minutes = last_result.get("expires_in_minutes", 30)
            return Action(
                text=f"I've sent a password reset link to {email}. It expires in {minutes} minutes; "
                "check your spam folder if you don't see it.",
                done=True,
            )
        return Action(
            text="I couldn't find an account with that email. Could you check the address?", done=True
        )
    order_id = _order_id(users)
    if order_id is None:
        return Action(text="Could you give me your order number? It looks like A-1234.")
    order = next((r for n, r in reversed(earlier + recent) if n == "get_order"), None)
    if order is None:
        return Action(tool="get_order", arguments={"order_id": order_id})
    if not isinstance(order, dict) or "error" in order:
        return Action(
            text="I couldn't find that order. Please check the order number and try again.", done=True
        )
    if flow == "order-status":
        carrier = f" with {order['carrier']}" if order.get("carrier") else ""
        tracking = f", tracking number {order['tracking']}" if order.get("tracking") else ""
        eta = f"; expected {order['eta']}" if order.get("eta") else ""
        return Action(text=f"Order {order_id} is {order.get('status')}{carrier}{tracking}{eta}.", done=True)
    # refund
    if "issue_refund" in called:
        if not isinstance(last_result, dict) or "error" in last_result:
            return Action(
                text="The refund could not be issued; I've passed it to our billing team.", done=True
            )
        window = (
            HALLUCINATED_REFUND_WINDOW
            if conv.failure_mode == "wrong_refund_window"
            else CORRECT_REFUND_WINDOW
        )
        return Action(text=f"Your refund is on its way; the money reaches your card in {window}.", done=True)
    if not _within_policy(order):
        return Action(
            text=f"That order was delivered more than {REFUND_POLICY_DAYS} days ago, outside our "
            f"{REFUND_POLICY_DAYS} days refund policy. I can offer store credit or connect you with "
            "a colleague.",
            done=True,
        )
    if len(users) > 1 and _agreed(last):
        return Action(
            tool="issue_refund", arguments={"order_id": order_id, "amount_usd": order.get("total_usd")}
        )
    return Action(
        text=f"Order {order_id} is eligible for a full refund of ${order.get('total_usd')}. Shall I go ahead?"
    )


def _agreed(text: str) -> bool:
    return bool(re.search(r"(?i)\b(yes|please|go ahead|refund it)\b", text))


def _within_policy(order: dict[str, Any]) -> bool:
    try:
        delivered = date.fromisoformat(str(order.get("delivered_on")))
    except ValueError:
        return True
    return (POLICY_TODAY - delivered).days <= REFUND_POLICY_DAYS


def backend(name: str, arguments: dict[str, Any]) -> Any:
    """The fake CX backend for callers that declare no tools."""
    if name == "get_order":
        return ORDERS.get(str(arguments.get("order_id")), {"error": "order not found"})
    if name == "issue_refund":
        return {"refund_id": "R-778", "status": "accepted"}
    if name == "reset_password":
        return {"sent": True, "expires_in_minutes": 30}
    if name in ("get_account_balance", "get_credit_limit"):
        return {"balance_usd": 12.5, "credit_limit_usd": 500}
    return {"error": f"unknown tool {name}"}
