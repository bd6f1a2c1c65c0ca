"""Files that appear whole or not at all: written under a temporary name, then renamed."""

from __future__ import annotations

from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"  # a file written under this name, then renamed: a kill leaves it behind


def write_atomically(path: str | Path, content: str | bytes, temporary: str | None = None) -> None:
    """Write `content` (text as UTF-8 with Unix line ends, or bytes) to `path` through the sibling
    `temporary` (default: ``path.name + TEMPORARY_SUFFIX``), renamed over `path` when complete."""
    path = Path(path)
    staged = path.with_name(temporary or path.name + TEMPORARY_SUFFIX)
    if isinstance(content, bytes):
        staged.write_bytes(content)
    else:
        staged.write_text(content, encoding="utf-8", newline="\n")
    staged.replace(path)
