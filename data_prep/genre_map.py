"""Genre maps: Last.fm's fine genres -> coarse ones, applied before the genre vocabulary is made.

A genre map is a comma-separated CSV with a header row and the columns `fine,coarse`, one row per
fine genre (names are compared as the song tables compare them: case and spacing do not count).
A song's genres are mapped in their listed order, repeats merged; fine genres the map does not
list are dropped, so the map defines the label space, and a song none of whose genres is listed
is rejected (`no genre in the genre map`). The maps that the protocols need ship in
`data_prep/genre_maps/` and are named by their file name (`--genre-map musiclime9.csv`); any
other value is a path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from data_prep.sources import SourceError, genre_name, read_table

SHIPPED_MAPS = Path(__file__).with_name("genre_maps")
COLUMNS = ("fine", "coarse")
UNMAPPED_REASON = "no genre in the genre map"


@dataclass(frozen=True)
class GenreMap:
    """A read genre map: `path`, `coarse_of` {fine: coarse}, and `sha256` of the file's bytes (what
    a resumed build compares, so an edited map is a changed setting)."""

    path: Path
    coarse_of: dict[str, str]
    sha256: str

    def apply(self, genres: tuple[str, ...]) -> tuple[str, ...]:
        """('indie rock', 'grunge', 'polka') -> ('alternative rock',): mapped in order, repeats
        merged, unlisted genres dropped."""
        return tuple(dict.fromkeys(self.coarse_of[name] for name in genres if name in self.coarse_of))


def resolve_genre_map(value: str) -> Path:
    """A shipped map's file name -> its path in `data_prep/genre_maps/`; any other value as a path."""
    shipped = SHIPPED_MAPS / value
    return shipped if Path(value).name == value and shipped.is_file() else Path(value)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_genre_maps() -> list[str]:
    return sorted(path.name for path in SHIPPED_MAPS.glob("*.csv"))


def read_genre_map(value: str) -> GenreMap:
    """Read and check the genre map named or found at `value`.

    Raises `SourceError` naming the file and the fault: not found (listing the shipped maps), not a
    CSV with the columns fine,coarse, an empty name, no row, or a fine genre given two coarse ones.
    """
    path = resolve_genre_map(value)
    if not path.exists():
        raise SourceError(
            f"--genre-map {value}: no such file (a CSV with the columns {','.join(COLUMNS)}, or one of the "
            f"shipped maps: {', '.join(shipped_genre_maps())})"
        )
    table = read_table(
        path, ",", COLUMNS, "a genre map", quoted=True, fix="quote a genre name that holds a comma"
    )
    coarse_of: dict[str, str] = {}
    for line, (fine, coarse) in enumerate(zip(table["fine"], table["coarse"], strict=True), start=2):
        fine, coarse = genre_name(fine), genre_name(coarse)
        if not fine or not coarse:
            raise SourceError(f"{path}, line {line}: empty {'fine' if not fine else 'coarse'} genre name")
        if coarse_of.setdefault(fine, coarse) != coarse:
            raise SourceError(
                f"{path}, line {line}: {fine!r} is mapped to both {coarse_of[fine]!r} and {coarse!r}; "
                "a fine genre needs one coarse genre"
            )
    if not coarse_of:
        raise SourceError(f"{path} maps no genre: add rows fine,coarse below the header")
    return GenreMap(path.resolve(), coarse_of, file_sha256(path))
