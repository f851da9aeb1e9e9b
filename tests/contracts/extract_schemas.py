"""Extract the schemas a contract test needs from a published OpenAPI document.

    python tests/contracts/extract_schemas.py openapi.json openai_schemas.json \
        --source "openai/openai-openapi@<commit> (<date>)" Root1 Root2 ...

Keeps each named schema and every schema it refers to (``#/components/schemas/...``), in a
document of the same layout, so the references resolve inside it. Annotations that do not
constrain anything (``description``, ``example(s)``, ``x-*`` vendor keys) are dropped to keep
the fixture small; ``nullable: true`` (OpenAPI 3.0, left in places of 3.1 documents) becomes
the ``null`` type it means, since JSON Schema does not know the keyword. Nothing else changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ANNOTATIONS = frozenset({"description", "example", "examples"})
# Keywords whose value maps names to schemas: their keys are names, never keywords.
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
PREFIX = "#/components/schemas/"


def clean(node: Any, names: bool = False) -> Any:
    """``node`` without annotations, ``nullable`` rewritten (``names``: a map of names)."""
    if isinstance(node, list):
        return [clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: clean(value) for key, value in node.items()}
    out = {
        key: clean(value, key in NAME_MAPS)
        for key, value in node.items()
        if key not in ANNOTATIONS and not key.startswith("x-") and key != "nullable"
    }
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(PREFIX):
                found.add(value[len(PREFIX) :])
            else:
                refs(value, found)
    elif isinstance(node, list):
        for item in node:
            refs(item, found)


def extract(document: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    kept: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = clean(schemas[name])
        found: set[str] = set()
        refs(kept[name], found)
        todo.extend(sorted(found - kept.keys()))
    return {name: kept[name] for name in sorted(kept)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("document", type=Path, help="the OpenAPI document (JSON)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--source", required=True, help="where the document came from")
    parser.add_argument("roots", nargs="+", help="the schemas to keep, with their references")
    args = parser.parse_args()
    document = json.loads(args.document.read_text())
    fixture = {
        "source": args.source,
        "roots": sorted(args.roots),
        "components": {"schemas": extract(document, args.roots)},
    }
    args.output.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
