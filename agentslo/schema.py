"""`agent-slo schema`: the JSON Schema of the SLO YAML, generated from the spec model.

Editors use it through yaml-language-server:
`# yaml-language-server: $schema=https://…/agent-slo.schema.json` (or a relative path).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agentslo.spec import Spec


def spec_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agent-slo.dev/schema/agent-slo.schema.json"
    schema["title"] = "agent-slo SLO spec (agent-slo/v1)"
    return schema


def render() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    text = render()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text, end="")
    return 0
