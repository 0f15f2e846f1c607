"""The names the OpenTelemetry GenAI conventions give (v1.36 and the latest experimental ones), and
readers of OTLP attribute values, for `exporter.otlp`.

    >>> attributes([KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat"))])
    {'gen_ai.operation.name': 'chat'}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# --- attribute and event names of the conventions (v1.36 and the latest experimental ones) ---
OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
SERVICE_NAME = "service.name"
TOOL_NAME = "gen_ai.tool.name"
CONVERSATION = "gen_ai.conversation.id"
RESPONSE_MODEL, REQUEST_MODEL = "gen_ai.response.model", "gen_ai.request.model"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")  # the second: before v1.27
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
ERROR_TYPE = "error.type"
EVALUATION = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
TURN_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
TOOL_OPERATION = "execute_tool"
# agent-slo's own attributes (the `otel:` section renames the flow, outcome, version and exclusion ones)
ESCALATION_REQUIRED = "agent_slo.escalation_required"
FAILURE_MODE = "agent_slo.failure_mode"
TOOL_OUTCOME = "agent_slo.tool_outcome"
JUDGE_VERSION = "agent_slo.judge_version"
SYNTHETIC = "agent_slo.synthetic"  # true on a prober's requests: counted under the `synthetic` exclusion
STATUS_ERROR = 2  # Status.STATUS_CODE_ERROR


def value_of(any_value: AnyValue) -> Any:
    """An OTLP AnyValue as Python: str, bool, int, float, bytes, list or dict (None when empty)."""
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    return getattr(any_value, which)


def attributes(
    kvs: Iterable[KeyValue], keys: frozenset[str] | None = None, prefix: str = ""
) -> dict[str, Any]:
    """key → value of the attributes (only `keys` and those starting with `prefix` when `keys` is
    given); a repeated key keeps its last value."""
    out: dict[str, Any] = {}
    for kv in kvs:
        if keys is not None and kv.key not in keys and not kv.key.startswith(prefix):
            continue
        value = kv.value
        which = value.WhichOneof("value")
        # scalars inline (most attributes are): a call per attribute is most of the cost
        out[kv.key] = (
            getattr(value, which) if which in _SCALARS else None if which is None else value_of(value)
        )
    return out


_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value", "bytes_value"})


def resource_bytes(resource: dict[str, Any]) -> bytes:
    """A resource's attributes as a serialized Resource (what a deferred span keeps of its resource)."""
    out = Resource()
    for key, value in resource.items():
        kv = out.attributes.add(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        elif isinstance(value, str):
            kv.value.string_value = value
    serialized: bytes = out.SerializeToString()
    return serialized


def first_int(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if type(value) is int and value >= 0:
            return value
    return None


def operation(name: str, attrs: dict[str, Any], task_ops: set[str]) -> str | None:
    """The span's GenAI operation: `gen_ai.operation.name`, else the first word of a conventional span
    name ("chat gpt-4o", "execute_tool get_order"); None for other spans."""
    op = attrs.get(OPERATION)
    if type(op) is str:
        return op
    first = name.partition(" ")[0]
    return first if first in task_ops or first in TURN_OPERATIONS or first == TOOL_OPERATION else None
