"""Reading lyrics files. Kept free of TensorFlow so preparation workers can import it cheaply."""

from __future__ import annotations

from pathlib import Path


class LyricsError(ValueError):
    """Lyrics that cannot be used; `reason` is a short stable label for rejected.csv."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def read_lyrics(path: str | Path) -> str | None:
    """The text of a lyrics file; None when the file is missing; `LyricsError` if it is not UTF-8
    or cannot be read (permissions, I/O errors)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise LyricsError("lyrics not valid UTF-8", f"{path}: {error}") from error
    except OSError as error:
        raise LyricsError("unreadable lyrics", f"{path}: {error.strerror or error}") from error
