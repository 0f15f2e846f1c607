"""YAML loading that remembers where every key came from and refuses duplicate keys.

`load_with_lines` returns plain Python data plus a map from key path (a tuple of keys and list
indices) to the 1-based line it starts on, so validation errors can name file, line and key path.
Every failure is a problem with a line, never an exception: a character YAML forbids (a control
character) is named with its line, and a document whose aliases would expand beyond
`MAX_EXPANDED_NODES` (a "billion laughs" bomb of nested anchors) is refused before it is expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]

# Nodes a document may expand to once its aliases are followed. A large hand-written spec has a few
# thousand; a 500-byte bomb of nested anchors has billions. Checked before anything is built.
MAX_EXPANDED_NODES = 100_000


@dataclass(frozen=True)
class YamlProblem:
    path: Path
    line: int
    message: str


def load_with_lines(text: str) -> tuple[Any, dict[Path, int], list[YamlProblem]]:
    """Parse one YAML document; return (data, lines by path, problems such as duplicate keys)."""
    lines: dict[Path, int] = {}
    problems: list[YamlProblem] = []
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # raised while reading, before any token: no mark
        return None, lines, [_reader_problem(text, exc)]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, problems
        expanded = _expanded_size(node)
        if expanded > MAX_EXPANDED_NODES:
            problems.append(
                YamlProblem(
                    (),
                    1,
                    f"YAML aliases expand this document beyond {MAX_EXPANDED_NODES:,} nodes "
                    "(nested or recursive anchors); refused",
                )
            )
            return None, lines, problems

        def build(n: yaml.Node, path: Path) -> Any:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                out: dict[Any, Any] = {}
                for key_node, value_node in n.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        problems.append(YamlProblem(path, key_node.start_mark.line + 1, "keys must be text"))
                        continue
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str | int) or isinstance(key, bool):
                        problems.append(YamlProblem(path, key_node.start_mark.line + 1, "keys must be text"))
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
    except yaml.reader.ReaderError as exc:
        return None, lines, [_reader_problem(text, exc)]
    except RecursionError:
        problems.append(YamlProblem((), 1, "YAML nested too deeply to read; refused"))
        return None, lines, problems
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


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes `root` becomes with every alias followed, stopping once past the bound.

    Each distinct node's expanded size is computed once (aliases share node objects), so this is
    linear in the document even when the expansion is exponential. Merge keys (`<<: *base`) count
    their source like any alias. A recursive alias is counted as past the bound.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            return MAX_EXPANDED_NODES + 1
        in_progress.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > MAX_EXPANDED_NODES:
                    break
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                total += size(v)
                if total > MAX_EXPANDED_NODES:
                    break
        in_progress.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _reader_problem(text: str, exc: yaml.reader.ReaderError) -> YamlProblem:
    line = text.count("\n", 0, exc.position) + 1
    message = f"YAML cannot contain the control character U+{exc.character:04X}; remove it"
    return YamlProblem((), line, message)


def line_for(lines: dict[Path, int], path: Path) -> int:
    """The line of the longest known prefix of `path` (1 when nothing is known)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1
