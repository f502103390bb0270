"""The package layout's rules, read from the source: steps are siblings that share only
components/common, and only a step's KFP wrappers (component.py, *_component.py) know kfp."""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
STEPS = sorted(p.name for p in COMPONENTS.iterdir() if (p / "component.py").is_file())


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(COMPONENTS.parent).parent.parts
                base = ".".join(package[: len(package) - node.level + 1])
                found.add(f"{base}.{node.module}" if node.module else base)
            else:
                found.add(node.module or "")
    return found


def _step_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "components" and parts[1] in STEPS else None


def test_the_steps_are_found():
    assert STEPS == ["evaluate", "finish", "preprocess", "publish", "snapshot", "train"]


def test_no_step_package_imports_another_step_package():
    crossings = []
    for step in STEPS:
        for path in sorted((COMPONENTS / step).rglob("*.py")):
            for module in _imports(path):
                other = _step_of(module)
                if other and other != step:
                    crossings.append(f"{path.relative_to(COMPONENTS.parent)} imports {module}")
    assert crossings == [], "steps share code through components/common only"


def test_components_common_imports_no_step():
    for path in sorted((COMPONENTS / "common").rglob("*.py")):
        assert not [m for m in _imports(path) if _step_of(m)], path


def test_only_component_modules_import_kfp():
    for path in sorted(COMPONENTS.rglob("*.py")):
        if not path.name.endswith("component.py"):
            kfp = [m for m in _imports(path) if m == "kfp" or m.startswith("kfp.")]
            assert kfp == [], f"{path.relative_to(COMPONENTS.parent)} imports {kfp}"
