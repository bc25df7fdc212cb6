"""The architecture, checked: every module imports alone (no cycles), and nothing imports upward (DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "teleconsult"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if "migrations" not in path.parts and path.name != "__main__.py"
)

# Lower number = higher layer; a module may import only from its own layer or below (higher numbers).
LAYERS: dict[str, int] = {
    "teleconsult.app": 0,
    "teleconsult.cli": 0,
    "teleconsult.api": 1,
    "teleconsult.signaling": 2,
    "teleconsult.consultations": 2,
    "teleconsult.invitations": 2,
    "teleconsult.billing": 2,
    "teleconsult.doctors": 2,
    "teleconsult.tickets": 2,
    "teleconsult.housekeeping": 2,
    "teleconsult.outbox": 2,
    "teleconsult.notifications": 2,
    "teleconsult.store": 3,
    "teleconsult.bus": 3,
    "teleconsult.passwords": 3,
    "teleconsult.crypto": 3,
    "teleconsult.mail": 3,
    "teleconsult.calendar": 3,
    "teleconsult.i18n": 3,
    "teleconsult.rooms": 4,
    "teleconsult.lifecycle": 4,
    "teleconsult.protocol": 4,
    "teleconsult.config": 5,
    "teleconsult.errors": 5,
    "teleconsult.ids": 5,
    "teleconsult.logging": 5,
    "teleconsult.chores": 5,
    "teleconsult.batching": 5,
    "teleconsult.validation": 5,
    "teleconsult.forwarding": 5,
    "teleconsult.files": 5,
    "teleconsult": 5,
}

#: Each third-party library has one home.
HOMES = {
    "sqlalchemy": ("teleconsult.store",),
    "alembic": ("teleconsult.store",),
    "argon2": ("teleconsult.passwords",),
    "aiohttp": ("teleconsult.api", "teleconsult.app", "teleconsult.cli"),
    "aiohttp_jinja2": ("teleconsult.api", "teleconsult.app"),
    "cryptography": ("teleconsult.crypto",),
    "aiosmtplib": ("teleconsult.mail",),
    "icalendar": ("teleconsult.calendar",),
    "email_validator": ("teleconsult.validation",),
    "msgspec": ("teleconsult.protocol", "teleconsult.api.bodies"),
}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"{module} has no layer: add it to LAYERS")


def imports(module: str) -> set[str]:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_no_upward_imports(module: str) -> None:
    for imported in imports(module):
        if imported.startswith("teleconsult"):
            assert layer(imported) >= layer(module), f"{module} (L{layer(module)}) imports {imported}"


@pytest.mark.parametrize("module", MODULES)
def test_third_party_libraries_stay_home(module: str) -> None:
    for imported in imports(module):
        library = imported.split(".")[0]
        if library in HOMES:
            assert module.startswith(HOMES[library]), f"{module} imports {library}; its home is {HOMES[library]}"
