"""The examples in the availability docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["alternating", "base", "card", "fedau", "flgo", "markov", "memoryless", "scenario",
           "trace"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"fedkit.availability.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_package_imports_no_torch_flower_or_algorithms():
    import subprocess
    import sys

    code = (
        "import sys, fedkit.availability; "
        "mods = ('torch', 'flwr', 'fedkit.algorithms', 'matplotlib'); "
        "bad = [m for m in mods if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
