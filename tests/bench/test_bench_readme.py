"""Tests for fedkit.bench.readme: generated Markdown sections between markers."""

from __future__ import annotations

import pytest

from fedkit.bench.readme import replace_section


def test_replaces_only_the_named_section(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("intro\n<!-- a -->\nold a\n<!-- /a -->\nmiddle\n<!-- b -->\nold b\n"
                    "<!-- /b -->\nend\n")
    replace_section(path, "a", "| new | table |\n")
    assert path.read_text() == ("intro\n<!-- a -->\n| new | table |\n<!-- /a -->\nmiddle\n"
                                "<!-- b -->\nold b\n<!-- /b -->\nend\n")
    replace_section(path, "a", "again")  # idempotent shape: rewriting keeps the markers
    assert path.read_text().count("<!-- a -->") == 1
    assert "again\n<!-- /a -->" in path.read_text()


@pytest.mark.parametrize("text", [
    "no markers\n",
    "<!-- a -->\nonly the start\n",
    "<!-- /a -->\nend first\n<!-- a -->\n",
    "<!-- a -->\n<!-- a -->\n<!-- /a -->\n",
])
def test_missing_misordered_or_repeated_markers_are_refused(tmp_path, text):
    path = tmp_path / "README.md"
    path.write_text(text)
    with pytest.raises(ValueError, match="<!-- "):
        replace_section(path, "a", "x")
    assert path.read_text() == text
