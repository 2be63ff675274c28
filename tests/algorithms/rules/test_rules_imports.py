"""The rules stay framework-free: numpy, the standard library and fedkit.seeding only."""

import ast
import sys
from pathlib import Path

import fedkit.algorithms.rules as rules

ALLOWED = {"numpy", "fedkit.seeding", "fedkit.algorithms.rules"}


def test_rules_import_only_numpy_stdlib_and_seeding():
    folder = Path(rules.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or any(
                    name == a or name.startswith(a + ".") for a in ALLOWED
                )
                assert ok, f"{path.name} imports {name}"


def test_public_api_is_exported():
    for name in rules.__all__:
        assert hasattr(rules, name), name
