"""Generated sections of Markdown files, between a pair of HTML-comment markers.

Benchmark scripts regenerate their README tables from their result files: the section named
``name`` is the text between ``<!-- name -->`` and ``<!-- /name -->``; everything outside the
markers is kept byte for byte.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_section"]


def replace_section(path: str | Path, name: str, body: str) -> None:
    """Replace the section ``name`` of the Markdown file ``path`` with ``body``.

    Raises:
        ValueError: If the file lacks either marker, has the end marker first, or holds a
            marker more than once (the section would be ambiguous).
    """
    path = Path(path)
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text()
    for marker in (start, end):
        if text.count(marker) != 1:
            raise ValueError(f"{path}: expected the marker {marker!r} exactly once, found it "
                             f"{text.count(marker)} times; add '{start}' and '{end}' around "
                             "the generated section")
    head, rest = text.split(start, 1)
    if end not in rest:
        raise ValueError(f"{path}: {end!r} comes before {start!r}")
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.strip(chr(10))}\n{end}{tail}")
