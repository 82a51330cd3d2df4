"""Writing one benchmark's section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """Replace the section of ``path`` whose heading is ``section``'s first line (``## ...``) by
    ``section``, or append it; sections stay separated by one blank line."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = section.strip("\n") + "\n"
    head = section.splitlines()[0]
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
