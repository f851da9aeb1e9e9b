"""YAML text -> a plain tree, refusing what YAML itself lets pass silently.

PyYAML keeps the last of two equal keys without a word (``port: 8080`` then ``port: 9090``),
so the node tree is walked for duplicates before it is built. An empty file is reported too:
it is nearly always the wrong file, not a wish for the defaults.
"""

from __future__ import annotations

from typing import Any

import yaml

from relay.config.problems import Problems

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(text: str, problems: Problems) -> dict[str, Any] | None:
    """Parse ``text``; None (with problems recorded) when there is no usable mapping."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            problems.add("", "the file is empty (or only comments): there is nothing to serve")
            return None
        _find_duplicates(root, "", problems)
        tree = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses (a control character): its str() spans two lines and
        # points at a character offset, so say where it is as the other errors do.
        line, column = _line_column(text, exc.position)
        problems.add(
            "",
            f"line {line}, column {column}: invalid YAML: character #x{exc.character:04x}: "
            f"{exc.reason}",
        )
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        # One problem, one line: check-config prints one line per problem.
        problems.add("", f"{where}invalid YAML: {' '.join(problem.split())}")
        return None
    if not isinstance(tree, dict):
        problems.add(
            "", f"expected a mapping of sections at the top level, got {type(tree).__name__}"
        )
        return None
    return tree


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset into ``text``."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _find_duplicates(node: yaml.Node, path: str, problems: Problems) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor` overrides on purpose
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in first_line:
                problems.add(
                    child,
                    f"duplicate key (lines {first_line[key]} and {line}); YAML would keep only the last",
                )
            else:
                first_line[key] = line
            _find_duplicates(value_node, child, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _find_duplicates(item, f"{path}[{i}]", problems)
