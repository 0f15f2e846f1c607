"""The CX shop behind the one fake agent: its order table, its policy clock, and what it does next.

Pure functions, so the policy is testable without HTTP. `plan(flow, users, recent, earlier, conv)`
returns the agent's next `Action`: a tool call, or an answer that may finish the task. It follows
the cx-support policy the example scenarios check (look orders up with `get_order`, refund within
30 days of delivery, quote 5-10 business days, reset passwords by emailed link) unless the
conversation's seeded fault decisions (`demo.faults.simulate`) say otherwise: a wrong first tool,
a failed task, the hallucinated refund window, a missed or misrouted escalation.

    >>> import random
    >>> from agentslo.demo import EXAMPLE_SPEC
    >>> from agentslo.demo.faults import simulate
    >>> from agentslo.spec import load_spec
    >>> conv = simulate(load_spec(EXAMPLE_SPEC), "order-status", random.Random(1))
    >>> plan("order-status", ["Where is my order C-3003?"], [], [], conv)
    Action(tool='get_order', arguments={'order_id': 'C-3003'}, text='', done=False)

`backend` is the shop's own backend, used for the tools a caller does not declare; `ORDERS` is its
one order table and `POLICY_TODAY` its clock, fixed so the example orders stay on their side of the
refund window whatever the date (A-1001 inside it, B-2002 outside).
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
# The shop's orders; the example scenarios script the same records.
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
HELP: Final = "I can help with refunds, order status and password resets. What do you need?"
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


def classify_flow(spec: Spec, texts: list[str]) -> str | None:
    """The spec's flow the customer's messages are about, or None when none of them says."""
    for text in texts:
        for flow, pattern in FLOW_KEYWORDS:
            if flow in spec.flows and pattern.search(text):
                return flow
    return None


def _order_id(texts: list[str]) -> str | None:
    for text in reversed(texts):
        if m := _ORDER_RE.search(text):
            raw = m.group(1)
            return raw if "-" in raw else f"{raw[0]}-{raw[1:]}"
    return None


def plan(
    flow: str | None,
    users: list[str],
    recent: list[tuple[str, Any]],
    earlier: list[tuple[str, Any]],
    conv: Conversation,
) -> Action:
    """The CX policy for one step: `users` are the user's messages so far, `recent` the tool results
    since the last of them, `earlier` those before. `conv` carries the seeded fault decisions."""
    called = [name for name, _ in recent]
    escalate = bool(ESCALATE_RE.search(users[-1])) and conv.escalated
    if flow is None and not escalate:
        return Action(text=HELP)
    wrong = next((c.tool for c in conv.tool_calls if c.outcome == "wrong_tool"), None)
    if wrong and not earlier:
        if not called:
            return Action(tool=wrong, arguments={"order_id": _order_id(users) or "unknown"})
        if called == [wrong] and not any(c.outcome == "ok" for c in conv.tool_calls):
            # a mistaken tool, never noticed: the agent answers from what it got
            return Action(text="Sorry, I couldn't look that up right now.", done=True)
    if escalate:
        queue = "our Tier 2 team" if conv.context_preserved else "our support team"
        return Action(text=f"I've passed your case to {queue}; they will contact you shortly.", done=True)
    if conv.outcome in ("failure", "abandoned") and not called:
        return Action(
            text="I'm sorry, I couldn't complete that right now. Please try again later.", done=True
        )
    last_result = recent[-1][1] if recent else None
    if flow == "password-reset":
        return _password_reset(users, called, last_result)
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
    order_id = str(order.get("order_id") or order_id)
    if flow == "order-status":
        return Action(text=_status(order_id, order), done=True)
    return _refund(order_id, order, users, called, last_result, conv)


def _password_reset(users: list[str], called: list[str], last_result: Any) -> Action:
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
    return Action(text="I couldn't find an account with that email. Could you check the address?", done=True)


def _status(order_id: str, order: dict[str, Any]) -> str:
    if order.get("status") == "shipped":
        return (
            f"Your order {order_id} has shipped with {order.get('carrier')} (tracking "
            f"{order.get('tracking')}), expected on {order.get('eta')}."
        )
    return f"Your order {order_id} is {order.get('status')}."


def _refund(
    order_id: str,
    order: dict[str, Any],
    users: list[str],
    called: list[str],
    last_result: Any,
    conv: Conversation,
) -> Action:
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
    delivered = order.get("delivered_on")
    if not _within_policy(order):
        return Action(
            text=f"I'm sorry, order {order_id} was delivered on {delivered}, more than "
            f"{REFUND_POLICY_DAYS} days ago, so it's outside our {REFUND_POLICY_DAYS}-day refund policy. "
            "I can offer store credit or connect you with a human agent.",
            done=True,
        )
    total = float(order.get("total_usd") or 0)
    if len(users) > 1 and _agreed(users[-1]):
        return Action(
            tool="issue_refund", arguments={"order_id": order_id, "amount_usd": order.get("total_usd")}
        )
    found = f"I found order {order_id}" + (f", delivered on {delivered}" if delivered else "")
    return Action(
        text=f"{found}. It's within our {REFUND_POLICY_DAYS}-day refund window, so I can refund "
        f"${total:.2f}. Shall I go ahead?"
    )


def _agreed(text: str) -> bool:
    return bool(re.search(r"(?i)\b(yes|please|go ahead|refund it)\b", text))


def _within_policy(order: dict[str, Any]) -> bool:
    try:
        delivered = date.fromisoformat(str(order.get("delivered_on")))
    except ValueError:
        return True  # not delivered yet: nothing has started the window
    return (POLICY_TODAY - delivered).days <= REFUND_POLICY_DAYS


def backend(name: str, arguments: dict[str, Any]) -> Any:
    """The shop's own backend, for the tools a caller does not declare."""
    if name == "get_order":
        return ORDERS.get(str(arguments.get("order_id")), {"error": "order not found"})
    if name == "issue_refund":
        return {"refund_id": "R-778", "status": "accepted"}
    if name == "reset_password":
        return {"sent": True, "expires_in_minutes": 30}
    if name in ("get_account_balance", "get_credit_limit"):
        return {"balance_usd": 12.5, "credit_limit_usd": 500}
    return {"error": f"unknown tool {name}"}
