"""The fake agent's policy: what a small, deterministic support agent says and which tool it calls.

`decide(messages, behaviour)` reads an OpenAI-style transcript (user turns, assistant tool calls, tool
results) and returns the next move. It follows the cx-support policy the example scenarios check
(look orders up with get_order, refund within 30 days, quote 5-10 business days, reset passwords by
emailed link) unless a behaviour asks it to go wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Final

POLICY_TODAY: Final = dt.date(2026, 11, 22)  # the agent's policy clock, fixed so the examples stay true
REFUND_WINDOW_DAYS: Final = 30
_ORDER_ID: Final = re.compile(r"\b([A-Z]-\d{4})\b")
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")

# Data the `/chat` (HTTP) agent's own tools read; matches examples/scenarios.
DEMO_DATA: Final[dict[str, Any]] = {
    "get_order": {
        "A-1001": {
            "order_id": "A-1001",
            "status": "delivered",
            "delivered_on": "2026-11-12",
            "total_usd": 49.90,
        },
        "B-2002": {
            "order_id": "B-2002",
            "status": "delivered",
            "delivered_on": "2026-08-20",
            "total_usd": 120.0,
        },
        "C-3003": {
            "order_id": "C-3003",
            "status": "shipped",
            "carrier": "UPS",
            "tracking": "1Z999AA10123456784",
            "eta": "2026-11-25",
        },
    },
}


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
    """(tool, arguments, result) of every tool call in the conversation, oldest first."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out = []
    for m in messages:
        for c in m.get("tool_calls") or []:
            calls[c["id"]] = (c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
        if m.get("role") == "tool" and m.get("tool_call_id") in calls:
            name, args = calls[m["tool_call_id"]]
            try:
                result = json.loads(text_of(m))
            except ValueError:
                result = text_of(m)
            out.append((name, args, result))
    return out


def decide(messages: list[dict[str, Any]], behaviour: str = "good") -> tuple[str, Any]:
    """The agent's next move: ("tool", (name, arguments)) or ("text", reply)."""
    user = _last_user(messages)
    low = user.lower()
    history = " ".join(text_of(m) for m in messages if m.get("role") == "user")
    answered_since_user = messages and messages[-1].get("role") == "tool"
    if behaviour == "loop":
        return "tool", ("get_order", {"order_id": "A-1001"})
    if answered_since_user:
        return "text", _after_tool(messages, behaviour)
    order = _ORDER_ID.search(user) or _ORDER_ID.search(history)
    email = _EMAIL.search(user)
    if "password" in history.lower() and ("password" in low or email):
        if email:
            return "tool", ("reset_password", {"email": email.group(0)})
        return "text", "I can help you reset your password. What's the email address on your account?"
    lookup = ("get_account_balance", {"account": "me"}) if behaviour == "wrong_tool" else None
    if "refund" in low or "return" in low:
        seen = {name: res for name, _, res in _tool_results(messages)}
        if ("yes" in low or "refund it" in low) and "get_order" in seen:
            res = seen["get_order"]
            if isinstance(res, dict) and _refundable(res):
                return "tool", ("issue_refund", {"order_id": res["order_id"], "amount_usd": res["total_usd"]})
        if order:
            return "tool", lookup or ("get_order", {"order_id": order.group(1)})
        return "text", "I can help with a refund. Which order is it (for example A-1001)?"
    if order and any(w in low for w in ("where", "status", "order")):
        return "tool", lookup or ("get_order", {"order_id": order.group(1)})
    return "text", "I can help with refunds, order status and password resets. What do you need?"


def _refundable(order: dict[str, Any]) -> bool:
    try:
        delivered = dt.date.fromisoformat(str(order.get("delivered_on")))
    except ValueError:
        return False
    return order.get("status") == "delivered" and (POLICY_TODAY - delivered).days <= REFUND_WINDOW_DAYS


def _after_tool(messages: list[dict[str, Any]], behaviour: str) -> str:
    name, args, res = _tool_results(messages)[-1]
    res = res if isinstance(res, dict) else {"error": str(res)}
    refund_intent = any(w in _last_user(messages).lower() for w in ("refund", "return"))
    if name == "get_order":
        oid = res.get("order_id") or args.get("order_id", "")
        if "error" in res:
            return f"I couldn't find order {oid}; could you check the order number?"
        if res.get("status") == "shipped":
            return (
                f"Your order {oid} has shipped with {res.get('carrier')} (tracking {res.get('tracking')}), "
                f"expected on {res.get('eta')}."
            )
        if refund_intent and _refundable(res):
            return (
                f"I found order {oid}, delivered on {res.get('delivered_on')}. It's within our 30-day "
                f"refund window, so I can refund ${res.get('total_usd', 0):.2f}. Shall I go ahead?"
            )
        if refund_intent:
            return (
                f"I'm sorry, order {oid} was delivered on {res.get('delivered_on')}, more than 30 days ago, "
                "so it's outside our 30-day refund policy. I can offer store credit or connect you with a "
                "human agent."
            )
        return f"Your order {oid} is {res.get('status')}."
    if name == "issue_refund":
        if "error" in res:
            return f"I couldn't issue the refund: {res['error']}. Let me connect you with a human agent."
        window = "3-5 business days" if behaviour == "bad_policy" else "5-10 business days"
        return (
            f"Done: refund {res.get('refund_id')} for order {args.get('order_id')} is accepted. "
            f"You'll see the money in {window}."
        )
    if name == "reset_password":
        if res.get("sent"):
            return (
                f"I've sent a reset link to {args.get('email')}. It expires in "
                f"{res.get('expires_in_minutes', 30)} minutes; check your spam folder if you don't see it."
            )
        return "I couldn't find an account with that email. Could you check the address?"
    return "Sorry, I couldn't look that up right now."
