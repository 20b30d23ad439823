"""Writes a benchmark's Markdown table into README.md between its own markers."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def update_readme(section: str, markdown: str) -> bool:
    """Replace the text between ``<!-- results:SECTION:start -->`` and ``...:end -->``; False if absent."""
    start, end = f"<!-- results:{section}:start -->", f"<!-- results:{section}:end -->"
    text = README.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return False
    README.write_text(pattern.sub(lambda _m: f"{start}\n{markdown.strip()}\n{end}", text))
    return True
