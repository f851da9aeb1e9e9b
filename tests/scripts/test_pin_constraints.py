"""constraints.txt (used by ``make dev`` and CI) pins everything, inside pyproject's ranges."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pin_constraints", ROOT / "scripts" / "pin_constraints.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{line}: a constraint is one exact version"
            found[canonicalize_name(requirement.name)] = specifier.version
    return found


def test_every_direct_requirement_is_pinned_inside_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["test"],
        *project["build-system"]["requires"],
    ]
    pinned = pins()
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(
            {**default_environment(), "extra": ""}
        ):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {requirement.name}=={version}, outside pyproject's {line!r}"
        )


def test_everything_installed_for_make_dev_is_pinned() -> None:
    # What these requirements pull in here, by name: a new dependency of a dependency
    # would otherwise float in CI.
    pin = script()
    missing = sorted(set(pin.closure(pin.dev_requirements())) - set(pins()))
    assert not missing, f"not in constraints.txt (run `make constraints`): {missing}"
