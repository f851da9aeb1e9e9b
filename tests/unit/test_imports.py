"""Import directions: the request flows one way, and the parts meet only in ``app.py``.

Read from the source with ``ast`` (imports under ``TYPE_CHECKING`` count too: a type-only
import still couples two modules). A rule broken here names the importing file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "relay"

# The stages of the request path: none imports another (app.py lists them in order).
STAGES = ("auth", "routing", "cache")

# (importer, imported): packages or modules under relay, by dotted prefix.
FORBIDDEN = [
    ("stream", "egress"),
    ("stream", "upstream"),
    ("egress", "upstream"),
    ("wire", "exchange"),
    ("dialects", "providers"),
    *((a, b) for a in STAGES for b in STAGES if a != b),
    # Route handling is composed by app.py alone: nothing on the path reaches back up to it.
    *((part, "handlers") for part in ("stream", "forward", "providers", "dialects", *STAGES)),
    *((part, "app") for part in ("handlers", "stream", "forward", "providers", *STAGES)),
]


def imports(path: Path) -> list[tuple[str, int]]:
    """Every ``relay.*`` module ``path`` imports, with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "relay":  # from relay import exchange
                found.extend((f"relay.{a.name}", node.lineno) for a in node.names)
            else:
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
    return [(name, line) for name, line in found if name.startswith("relay.")]


def module_of(path: Path, package: Path) -> str:
    return ".".join(path.relative_to(package.parent).with_suffix("").parts)


def within(module: str, prefix: str) -> bool:
    full = f"relay.{prefix}"
    return module == full or module.startswith(full + ".")


def violations(rules: list[tuple[str, str]], package: Path = PACKAGE) -> list[str]:
    broken = []
    for path in sorted(package.rglob("*.py")):
        importer = module_of(path, package)
        for imported, line in imports(path):
            for source, target in rules:
                if within(importer, source) and within(imported, target):
                    rel = path.relative_to(package.parent)
                    broken.append(f"{rel}:{line}: {source}/ imports {imported} ({target})")
    return sorted(set(broken))


def test_imports_run_one_way() -> None:
    assert violations(FORBIDDEN) == []


@pytest.mark.parametrize(("source", "target"), FORBIDDEN)
def test_each_rule_catches_its_import(source: str, target: str, tmp_path: Path) -> None:
    """No rule is vacuous: both sides exist, and a module of the importer's package that
    imports the other (even only for type checking) is reported, with its line."""
    for side in (source, target):
        found = PACKAGE / side
        assert found.is_dir() or found.with_suffix(".py").exists(), f"no relay.{side}"
    package = tmp_path / "relay"
    probe = package / source / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        f"    from relay.{target} import anything\n"
    )
    assert violations([(source, target)], package) == [
        f"relay/{source}/probe.py:3: {source}/ imports relay.{target} ({target})"
    ]
