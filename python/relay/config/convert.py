"""A plain YAML tree -> msgspec Structs, field by field, so that every wrong field is reported.

``msgspec.convert`` stops at the first error of a section; a user who wrote
``server: {prot: 8080, workers: two}`` must hear about both. So each field is converted on its
own, an unknown field is reported with the known names and skipped, and a section is still built
from its good fields, which spares the models that use a provider a follow-on error for a typo in
that provider.
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

import msgspec

from relay.config.problems import Problems, shown

S = TypeVar("S", bound=msgspec.Struct)

# Fields that are never read from YAML.
_INTERNAL = frozenset({"source"})
# Values never quoted back, even when they have the wrong type.
_SECRET = frozenset(
    {"api_key", "password", "bearer_token", "aws_secret_access_key", "aws_session_token"}
)


def convert_section(node: Any, kind: type[S], path: str, problems: Problems) -> S | None:
    """Build ``kind`` from a mapping; None when a required field is missing or wrong."""
    if node is None:
        node = {}
    if not isinstance(node, dict):
        problems.add(path, f"expected a mapping of settings, got {shown(node)}")
        return None
    fields = {f.name: f for f in msgspec.structs.fields(kind) if f.name not in _INTERNAL}
    values: dict[str, Any] = {}
    complete = True
    for key, value in node.items():
        name = str(key)
        child = f"{path}.{name}" if path else name
        field = fields.get(name)
        if field is None:
            word = "section" if not path else "field"
            problems.add(child, f"unknown {word} (known: {', '.join(sorted(fields))})")
            continue
        ok, converted = _convert_value(value, field.type, child, problems)
        if ok:
            values[name] = converted
        elif field.required:
            complete = False
    for field in fields.values():
        if field.required and field.name not in node:
            problems.add(f"{path}.{field.name}" if path else field.name, "required")
            complete = False
    return kind(**values) if complete else None


def _convert_value(value: Any, annotation: Any, path: str, problems: Problems) -> tuple[bool, Any]:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        section = convert_section(value, annotation, path, problems)
        return section is not None, section
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(value, dict) and origin in (typing.Union, types.UnionType):
        # `int | RetryConfig`: a mapping is the Struct's, checked field by field.
        struct = next((a for a in args if _is_struct(a)), None)
        if struct is not None:
            section = convert_section(value, struct, path, problems)
            return section is not None, section
    if origin is list and _is_struct(args[0]):
        if not isinstance(value, list):
            problems.add(path, f"expected a list, got {shown(value)}")
            return False, None
        items = [convert_section(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return True, [item for item in items if item is not None]
    if origin is dict and _is_struct(args[1]):
        if value is None:
            return True, {}
        if not isinstance(value, dict):
            problems.add(path, f"expected a mapping of name to settings, got {shown(value)}")
            return False, None
        entries = {
            str(k): convert_section(v, args[1], f"{path}.{k}", problems) for k, v in value.items()
        }
        return True, {k: v for k, v in entries.items() if v is not None}
    try:
        return True, msgspec.convert(value, annotation, strict=False)
    except msgspec.ValidationError:
        got = type(value).__name__ if path.rsplit(".", 1)[-1] in _SECRET else shown(value)
        problems.add(path, f"expected {_describe(annotation)}, got {got}")
        return False, None


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _describe(annotation: Any) -> str:
    """``int | None`` -> 'an integer or null': the words a YAML user knows."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is dict:
        return "a mapping of names to strings"  # headers: the only plain mapping in the schema
    if typing.get_origin(annotation) is list:
        return f"a list of {_describe(typing.get_args(annotation)[0]).removeprefix('a ').removeprefix('an ')}s"
    if _is_struct(annotation):
        return "a mapping"
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        type(None): "null",
    }.get(annotation, str(annotation))
