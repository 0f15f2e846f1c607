"""`agent-slo schema`: the JSON Schema of the SLO YAML, generated from the spec model.

Editors use it through yaml-language-server: start a spec with
`# yaml-language-server: $schema=<path or URL of agent-slo.schema.json>`.
`agent-slo schema --markdown` prints the README's key reference, generated from the same models.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agentslo import spec_model as m
from agentslo._reference import DESCRIPTIONS, SECTIONS


def spec_schema() -> dict[str, Any]:
    schema = m.Spec.model_json_schema(by_alias=True, mode="validation")
    for model_name, definition in [("Spec", schema), *schema.get("$defs", {}).items()]:
        for key, prop in definition.get("properties", {}).items():
            if text := DESCRIPTIONS.get(f"{model_name}.{key}"):
                prop["description"] = text
            prop.pop("title", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agent-slo.dev/schema/agent-slo.schema.json"
    schema["title"] = "agent-slo SLO spec (agent-slo/v1)"
    return schema


def render() -> str:
    return json.dumps(spec_schema(), indent=2) + "\n"


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(defaults)"
    if value in ((), {}):
        return ""
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def reference_markdown() -> str:
    """One table per section of the format: key, default, meaning."""
    out: list[str] = []
    for model_name, title in SECTIONS.items():
        model: type[BaseModel] = getattr(m, model_name)
        out += [f"#### {title}", "", "| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            out.append(f"| `{key}` | {_default(field)} | {DESCRIPTIONS.get(f'{model_name}.{key}', '')} |")
        out.append("")
    return "\n".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")
    parser.add_argument("--markdown", action="store_true", help="print the key reference as Markdown tables")


def run(args: argparse.Namespace) -> int:
    text = reference_markdown() + "\n" if args.markdown else render()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text, end="")
    return 0
