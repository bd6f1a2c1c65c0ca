"""A folder's record of what this project wrote into it, so a command replaces only its own files.

Every command that writes into a folder a user names (a training run, an export) lists the
entries it wrote in the folder's `MARKER_FILE`, under the folder's `kind` (``run``, ``export``).
Replacing a folder (``--overwrite``) then follows one rule: check everything first, refuse a
folder of another kind or one that holds anything the marker does not list, and only then delete
the listed entries. Nothing a user put there is ever removed.

    record_outputs(run_dir, "run", ["config.json", "logs"])
    clear_outputs(run_dir, "run")    # OutputsError if run_dir holds anything else
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from genre_fusion.files.atomic import write_atomically

MARKER_FILE = ".genre_fusion.json"


class OutputsError(ValueError):
    """A folder whose content this project did not write; the message names what is foreign."""


def _is_marker(name: str) -> bool:
    """The marker, or one that `record_outputs` was writing when it was killed."""
    return name == MARKER_FILE or (name.startswith(f"{MARKER_FILE}.") and name.endswith(".tmp"))


def _article(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _check_kind(folder: Path, found: str | None, kind: str) -> None:
    if found not in (None, kind):
        raise OutputsError(f"{folder} holds {_article(found)}, not {_article(kind)}: choose another folder")


def _read_marker(folder: Path) -> dict | None:
    path = folder / MARKER_FILE
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(marker, dict) or not isinstance(marker.get("outputs"), list):
            raise ValueError("not an outputs record")
    except (OSError, ValueError) as error:
        raise OutputsError(f"{path} is damaged ({error}): remove it or choose another folder") from error
    return marker


def owned_outputs(folder: str | Path) -> tuple[str | None, frozenset[str]]:
    """`(kind, names)` the marker of `folder` lists; `(None, {})` for a folder without a marker."""
    marker = _read_marker(Path(folder))
    if marker is None:
        return None, frozenset()
    return marker.get("kind"), frozenset(marker["outputs"])


def record_outputs(folder: str | Path, kind: str, names: Iterable[str]) -> None:
    """Add top-level entry `names` of `folder` (created if needed) to its marker of `kind`.

    Raises `OutputsError` when the folder's marker is of another kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous_kind, previous = owned_outputs(folder)
    _check_kind(folder, previous_kind, kind)
    marker = {"kind": kind, "outputs": sorted(previous | set(names))}
    # A name of this process's own: training and evaluation may record into one run at once.
    staged = f"{MARKER_FILE}.{os.getpid()}.tmp"
    write_atomically(folder / MARKER_FILE, json.dumps(marker, indent=1) + "\n", staged)


def foreign_entries(folder: str | Path, kind: str, legacy: Iterable[str] = ()) -> list[str]:
    """Entries of `folder` that a `kind` folder's marker does not list (sorted; the marker itself
    excluded). A folder without a marker owns only `legacy` names: those that versions before the
    marker wrote. Raises `OutputsError` for a marker of another kind."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    marker_kind, names = owned_outputs(folder)
    if marker_kind is None:
        names = frozenset(legacy)
    _check_kind(folder, marker_kind, kind)
    return sorted(
        entry.name for entry in folder.iterdir() if entry.name not in names and not _is_marker(entry.name)
    )


def clear_outputs(folder: str | Path, kind: str, legacy: Iterable[str] = ()) -> None:
    """Delete what this project wrote into `folder`, leaving an empty folder, after checking that
    it holds nothing else (see `foreign_entries`). Raises `OutputsError`, deleting nothing, when it
    does; a missing folder is fine."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputsError(f"{folder} is a file, not a folder: choose another folder")
    foreign = foreign_entries(folder, kind, legacy)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputsError(
            f"{folder} holds files this project did not write there ({listed}): nothing was removed; "
            "choose another folder, or move those files away"
        )
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
