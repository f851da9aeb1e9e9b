#!/usr/bin/env python3
"""Write constraints.txt: the exact versions of everything ``make dev`` installs, as installed now.

``make dev`` (and so CI) installs under these constraints, so a new release of a test tool, a
linter or a dependency cannot turn main red on its own: versions move when someone runs
``make constraints`` in an environment where ``make test lint`` pass, and commits the result.
pyproject.toml keeps the ranges users install from; every pin here must lie inside them.

What is pinned: the runtime dependencies and the ``test`` extra of pyproject.toml, everything
they require in turn (as installed in this interpreter), and the build backend (maturin, which
pip installs in its isolated build environment: ``make`` passes the file as PIP_CONSTRAINT, which
that environment honours too).

Usage: scripts/pin_constraints.py   (run by ``make constraints``)
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
HEADER = """\
# Exact versions for `make dev` (and CI): written by `make constraints` (scripts/pin_constraints.py)
# from an environment where `make test lint` passed. Users installing Relay are not bound by
# them: pyproject.toml's ranges are. Regenerate after changing a dependency or its range.
"""


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def dev_requirements() -> list[Requirement]:
    """What ``make dev`` installs: the runtime dependencies and the test extra."""
    project = _pyproject()["project"]
    names = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return [Requirement(name) for name in names]


def build_requirements() -> list[Requirement]:
    """The build backend, which pip installs only in its isolated build environment."""
    return [Requirement(name) for name in _pyproject()["build-system"]["requires"]]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Installed distribution name -> version, for ``roots`` and all they require."""
    pinned: dict[str, str] = {}
    followed: set[tuple[str, str]] = set()  # (package, extra) whose requirements were queued
    todo = [(requirement, "") for requirement in roots]
    while todo:
        requirement, extra = todo.pop()
        environment = {**default_environment(), "extra": extra}
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        dist = metadata.distribution(requirement.name)  # not installed: run `make dev` first
        pinned[name] = dist.version
        # A requirement's extras (`pkg[extra]`) bring requirements of their own.
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) not in followed:
                followed.add((name, wanted))
                todo += [(Requirement(line), wanted) for line in dist.requires or []]
    return dict(sorted(pinned.items()))


def current() -> dict[str, str]:
    """The pins of constraints.txt as it is."""
    if not CONSTRAINTS.exists():
        return {}
    lines = CONSTRAINTS.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("==", 1) for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def main() -> int:
    pins = closure(dev_requirements())
    # The build backend is not installed by `make dev`: pin it if this interpreter has it (a
    # build environment's copy is gone), else keep the pin there is.
    old = current()
    for requirement in build_requirements():
        name = canonicalize_name(requirement.name)
        try:
            pins.update(closure([requirement]))
        except metadata.PackageNotFoundError:
            if name not in old:
                sys.exit(f"pip install '{requirement}' to pin the build backend")
            pins[name] = old[name]
    pins = dict(sorted(pins.items()))
    CONSTRAINTS.write_text(
        HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items()),
        encoding="utf-8",
    )
    print(f"{CONSTRAINTS.relative_to(ROOT)}: {len(pins)} packages pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
