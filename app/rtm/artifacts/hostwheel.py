"""rtm's host part, staged as a project of its own so that hosts install only what they run.

The pipeline hosts run the programs named in pyproject's ``[tool.rtm] host-scripts``
(``rtm-producer``, ``rtm-consumer``). Their wheel holds the modules of those programs and every
rtm module these import, found by reading the imports (nothing to list by hand, nothing to
forget), with the package data beside them (the catalogue, the sample data) and the extras in
``host-extras``. The lab, the artifact cache, ``fab status``'s checks, the layout and the drills
stay on the controller, which installs the whole project.
"""

from __future__ import annotations

import ast
import json
import shutil
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE = "rtm"


class HostWheelError(Exception):
    """The project cannot be split: the message says what is missing."""


def host_modules(app_dir: Path, entry_modules: Iterable[str]) -> dict[str, Path]:
    """The rtm modules the entry modules import, directly or not, with their packages: the
    file of each by its dotted name."""
    found: dict[str, Path] = {}
    todo = list(entry_modules)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_path(app_dir, name)
        if path is None:
            raise HostWheelError(f"{name}: no such module under {app_dir}")
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [m for m in _imports(path, name) if _module_path(app_dir, m) is not None]
    return found


def stage(project_dir: Path, out: Path) -> Path:
    """Write the host project under ``out`` (emptied first) and return its directory."""
    pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))
    project, settings = pyproject["project"], pyproject.get("tool", {}).get("rtm", {})
    app_dir = project_dir / pyproject["tool"]["setuptools"]["packages"]["find"]["where"][0]
    scripts = {name: project["scripts"][name] for name in settings.get("host-scripts", [])}
    if not scripts:
        raise HostWheelError("pyproject.toml: [tool.rtm] host-scripts names no script")
    modules = host_modules(app_dir, (target.split(":")[0] for target in scripts.values()))
    shutil.rmtree(out, ignore_errors=True)
    for source in modules.values():
        dest = out / source.relative_to(app_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    patterns = pyproject["tool"]["setuptools"].get("package-data", {}).get(PACKAGE, [])
    data = _package_data(app_dir / PACKAGE, patterns, modules)
    for path in data:
        dest = out / PACKAGE / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(app_dir / PACKAGE / path, dest)
    extras = {
        extra: project.get("optional-dependencies", {})[extra]
        for extra in settings.get("host-extras", [])
    }
    (out / "pyproject.toml").write_text(_pyproject(pyproject, project, scripts, extras, data))
    return out


def _module_path(app_dir: Path, name: str) -> Path | None:
    base = app_dir.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports(path: Path, name: str) -> set[str]:
    """Absolute names of the rtm modules (or packages, or names in them) a module imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(f"{PACKAGE}.")}


def _package_data(root: Path, patterns: Iterable[str], modules: Mapping[str, Path]) -> list[str]:
    """The data files of the host packages (not of a controller-only package below them)."""
    packages = {m for m in modules if (root.parent / m.replace(".", "/") / "__init__.py").exists()}
    files = []
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root)
            owner = PACKAGE
            for depth in range(1, len(rel.parts)):
                inner = f"{PACKAGE}." + ".".join(rel.parts[:depth])
                if (root.joinpath(*rel.parts[:depth]) / "__init__.py").exists():
                    owner = inner
            if path.is_file() and owner in packages:
                files.append(rel.as_posix())
    return files


def _pyproject(
    source: Mapping[str, Any],
    project: Mapping[str, Any],
    scripts: Mapping[str, str],
    extras: Mapping[str, list[str]],
    data: list[str],
) -> str:
    # JSON strings and arrays are valid TOML: no writer needed for these few keys.
    def value(v: object) -> str:
        return json.dumps(v)

    lines = ["[build-system]"]
    lines += [f"{k} = {value(v)}" for k, v in source["build-system"].items()]
    lines += ["", "[project]"]
    for key in ("name", "version", "description", "requires-python", "license", "dependencies"):
        if key in project:
            lines.append(f"{key} = {value(project[key])}")
    lines += ["", "[project.optional-dependencies]"]
    lines += [f"{k} = {value(v)}" for k, v in extras.items()]
    lines += ["", "[project.scripts]"]
    lines += [f"{k} = {value(v)}" for k, v in scripts.items()]
    lines += ["", "[tool.setuptools.packages.find]", f'include = ["{PACKAGE}*"]']
    lines += ["", "[tool.setuptools.package-data]", f"{PACKAGE} = {value(data)}", ""]
    return "\n".join(lines)
