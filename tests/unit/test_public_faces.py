"""Each module of the product says what it offers (``__all__``), and no other module reaches past that:
an import of a name a module does not list, from anywhere in ``worker/``, fails here. Private modules
(``_name.py``), package ``__init__`` and ``__main__`` files are exempt from declaring one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def declared(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list | tuple), f"{path}: __all__ must be a literal list"
            return [str(name) for name in value]
    return None


def defined(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


MODULES = {module_name(p): p for p in sorted(WORKER.rglob("*.py"))}
PUBLIC = {
    name: path
    for name, path in MODULES.items()
    if path.name not in {"__init__.py", "__main__.py"} and not path.name.startswith("_")
}


def test_every_public_module_declares_its_face_and_each_name_exists() -> None:
    missing = sorted(name for name, path in PUBLIC.items() if declared(path) is None)
    assert missing == [], "declare __all__ (or make the module private: _name.py)"
    unknown = {
        name: sorted(set(face) - defined(path))
        for name, path in PUBLIC.items()
        if (face := declared(path)) is not None and set(face) - defined(path)
    }
    assert unknown == {}


def test_no_module_imports_a_name_another_does_not_offer() -> None:
    reached: list[str] = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in PUBLIC):
                continue
            face = declared(PUBLIC[node.module]) or []
            reached += [
                f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                for alias in node.names
                if alias.name not in face and f"{node.module}.{alias.name}" not in MODULES
            ]
    assert reached == []
