"""YAML loading that remembers where every key came from and refuses duplicate keys.

`load_with_lines` returns plain Python data plus a map from key path (a tuple of keys and list
indices) to the 1-based line it starts on, so validation errors can name file, line and key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    path: Path
    line: int
    message: str


def load_with_lines(text: str) -> tuple[Any, dict[Path, int], list[YamlProblem]]:
    """Parse one YAML document; return (data, lines by path, problems such as duplicate keys)."""
    loader = yaml.SafeLoader(text)
    lines: dict[Path, int] = {}
    problems: list[YamlProblem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, problems

        def build(n: yaml.Node, path: Path) -> Any:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                out: dict[Any, Any] = {}
                for key_node, value_node in n.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str | int) or isinstance(key, bool):
                        problems.append(
                            YamlProblem(path, key_node.start_mark.line + 1, "keys must be text")
                        )
                        continue
                    if key in out:
                        problems.append(
                            YamlProblem(
                                (*path, key),
                                key_node.start_mark.line + 1,
                                f"duplicate key {key!r} (first on line {lines[(*path, key)]}); "
                                "named things must be unique, a later one never silently overrides",
                            )
                        )
                        continue
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    out[key] = build(value_node, (*path, key))
                return out
            if isinstance(n, yaml.SequenceNode):
                return [build(v, (*path, i)) for i, v in enumerate(n.value)]
            return loader.construct_object(n, deep=True)

        return build(node, ()), lines, problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(YamlProblem((), line, f"YAML syntax: {exc.problem or exc}"))
        return None, lines, problems
    except yaml.YAMLError as exc:
        problems.append(YamlProblem((), 1, f"YAML: {exc}"))
        return None, lines, problems
    finally:
        loader.dispose()


def line_for(lines: dict[Path, int], path: Path) -> int:
    """The line of the longest known prefix of `path` (1 when nothing is known)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1
