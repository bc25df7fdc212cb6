"""The architecture, checked: every module imports alone (no cycles), and nothing imports upward (DESIGN.md)."""

from __future__ import annotations

import ast
import re
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

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def layer_table() -> dict[str, int]:
    """The one layer table: the rows between the markers of docs/architecture.md (``| `module` | layer | … |``)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("<!-- layers: begin -->", 1)[1].split("<!-- layers: end -->", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| (\d) \|", block, flags=re.MULTILINE)
    return {module: int(number) for module, number in rows}


# Lower number = higher layer; a module may import only from its own layer or below (higher numbers).
LAYERS: dict[str, int] = layer_table()

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
    "jinja2": ("teleconsult.templates",),
    "bech32": ("teleconsult.crypto",),
    "filetype": ("teleconsult.documents.kinds",),
    "fpdf": ("teleconsult.prescriptions.pdf",),
    "segno": ("teleconsult.prescriptions.pdf",),
    "msgspec": ("teleconsult.protocol", "teleconsult.api.bodies"),
    "redis": ("teleconsult.bus",),
    "prometheus_client": ("teleconsult.metrics",),
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


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("teleconsult.api")])
def test_the_http_layer_never_imports_the_store(module: str) -> None:
    """Handlers see services and domain values; ORM rows and transactions stay below them."""
    for imported in imports(module):
        assert not imported.startswith("teleconsult.store"), f"{module} imports {imported}"


def test_the_layer_table_names_only_modules_that_exist() -> None:
    packages = {".".join(m.split(".")[:2]) for m in MODULES}
    assert set(LAYERS) - packages - {"teleconsult"} == set()


@pytest.mark.parametrize("module", MODULES)
def test_third_party_libraries_stay_home(module: str) -> None:
    for imported in imports(module):
        library = imported.split(".")[0]
        if library in HOMES:
            assert module.startswith(HOMES[library]), f"{module} imports {library}; its home is {HOMES[library]}"
