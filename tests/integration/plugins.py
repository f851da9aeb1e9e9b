"""A Relay plugin as its own package, pip-installed into a fresh virtual environment: what the
provider and middleware plugin tests share."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import relay

PYPROJECT = """
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "{dist}"
version = "{version}"

[project.entry-points."{group}"]
{kind} = "{target}"
"""
# A PEP 517 backend in the plugin's own tree, so the test builds offline with nothing but pip.
BACKEND = """
import base64, hashlib, zipfile

INFO = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{NAME}.py": open(f"{NAME}.py", "rb").read(),
    f"{INFO}/METADATA": f"Metadata-Version: 2.1\\nName: {DIST}\\nVersion: {VERSION}\\n".encode(),
    f"{INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    f"{INFO}/entry_points.txt": ENTRY_POINTS.encode(),
}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(f"{wheel_directory}/{name}", "w") as wheel:
        for path, data in FILES.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            wheel.writestr(path, data)
        wheel.writestr(f"{INFO}/RECORD", "\\n".join([*record, f"{INFO}/RECORD,,"]) + "\\n")
    return name
"""


def install_plugin(
    root: Path, dist: str, code: str, entry: tuple[str, str, str], version: str = "0.1"
) -> str:
    """Make the package ``dist`` under ``root`` (one module, ``code``, and one entry point:
    ``(group, name, "module:attribute")``), pip-install it into a fresh venv there (seeing
    this interpreter's packages) and return that venv's python."""
    group, kind, target = entry
    module = dist.replace("-", "_")
    source = root / dist
    source.mkdir()
    (source / f"{module}.py").write_text(code)
    (source / "pyproject.toml").write_text(
        PYPROJECT.format(dist=dist, version=version, group=group, kind=kind, target=target)
    )
    entry_points = f"[{group}]\n{kind} = {target}\n"
    names = f"NAME, VERSION, DIST = {module!r}, {version!r}, {dist!r}\n"
    (source / "backend.py").write_text(names + f"ENTRY_POINTS = {entry_points!r}\n" + BACKEND)
    env_dir = root / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
         "--no-build-isolation", "--no-deps", "--quiet", str(source)],
        check=True, cwd=source,
    )  # fmt: skip
    return python


def relay_env() -> dict[str, str]:
    """Relay importable from this checkout in the plugin's venv."""
    checkout = str(Path(relay.__file__).resolve().parent.parent)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))}
