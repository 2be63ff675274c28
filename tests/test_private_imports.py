"""No module of fedkit imports another package's private module or name.

A private module (``_name.py``) or name belongs to the package that holds it; another package
uses the public API (the package ``__init__`` or a public module such as
``fedkit.privacy.secagg.extend``). Checked on the source with ``ast``, imports inside
functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fedkit

ROOT = Path(fedkit.__file__).resolve().parent


def _package_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1])


def _owner(dotted: str, root: Path) -> str | None:
    """The package owning the first private part of ``dotted``, or None if all public: the
    package of a private module, or the package of the module that holds a private name."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            holder = root.parent.joinpath(*parts[:i])
            return ".".join(parts[:i - 1] if holder.with_suffix(".py").is_file()
                            else parts[:i])
    return None


def private_imports(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        package = _package_of(path, root)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                owner = _owner(target, root)
                if not target.startswith(root.name + ".") or owner is None:
                    continue
                if package != owner and not package.startswith(owner + "."):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {target}")
    return found


def test_no_private_cross_package_imports():
    assert private_imports() == []


def test_the_check_finds_private_modules_and_names_of_other_packages(tmp_path):
    pkg = tmp_path / "fedkit"
    for folder in ("a", "a/inner", "b"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "a" / "_hidden.py").write_text("X = 1\n")
    (pkg / "a" / "mod.py").write_text("_y = 2\n")
    (pkg / "a" / "inner" / "ok.py").write_text(
        "from fedkit.a._hidden import X\nfrom fedkit.a.mod import _y\n")
    (pkg / "b" / "bad.py").write_text(
        "from fedkit.a._hidden import X\n\ndef f():\n    from fedkit.a.mod import _y\n")
    assert private_imports(pkg) == ["fedkit/b/bad.py:1: fedkit.a._hidden.X",
                                    "fedkit/b/bad.py:4: fedkit.a.mod._y"]
