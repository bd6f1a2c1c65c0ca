"""Source readers: a Music4All folder or a CSV manifest -> one table of songs.

Both return a `pandas.DataFrame` with one row per song and the columns of `SONG_COLUMNS`:
`id`, `audio` (Path), `lyrics` (Path or None: a song without lyrics), `genres` (tuple of
names, ordered), `artist` (grouping key of the split), `lang` (or None when unknown).
Structural faults raise `SourceError` naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SONG_COLUMNS = ("id", "audio", "lyrics", "genres", "artist", "lang")
INSTRUMENTAL_LANG = "INTRUMENTAL"  # spelled so in Music4All's id_lang.csv
MUSIC4ALL_TABLES = {
    "id_information.csv": ("id", "artist", "song", "album_name"),
    "id_genres.csv": ("id", "genres"),
    "id_lang.csv": ("id", "lang"),
}
MANIFEST_COLUMNS = ("id", "audio", "lyrics", "genres", "artist")


class SourceError(ValueError):
    """A collection that cannot be read as a whole."""


def _read_table(path: Path, separator: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise SourceError(f"{path} does not exist (expected a file with columns {', '.join(columns)})")
    try:
        table = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, quoting=0)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise SourceError(
            f"{path} could not be parsed as {_separator_name(separator)} CSV: {error}"
        ) from error
    missing = [column for column in columns if column not in table.columns]
    if missing:
        header = ",".join(map(str, table.columns))
        other = [sep for sep in ("\t", ",", ";", "|") if sep != separator and sep in header]
        hint = f" (the header looks {_separator_name(other[0])})" if other else ""
        raise SourceError(
            f"{path}: expected {_separator_name(separator)} columns {', '.join(columns)}, "
            f"missing {', '.join(missing)}; header read was {header!r}{hint}"
        )
    return table


def _separator_name(separator: str) -> str:
    return {"\t": "tab-separated", ",": "comma-separated", ";": "semicolon-separated"}.get(
        separator, f"{separator!r}-separated"
    )


def _split_genres(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def read_music4all(root: str | Path) -> pd.DataFrame:
    """Read Music4All's tab-separated tables (id_information, id_genres, id_lang) under `root`.

    Songs whose language is `INTRUMENTAL` are songs without lyrics, whatever their file holds.
    """
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"Music4All folder {root} does not exist")
    tables = {name: _read_table(root / name, "\t", columns) for name, columns in MUSIC4ALL_TABLES.items()}
    songs = tables["id_information.csv"][["id", "artist"]]
    # First row wins for an id listed twice in a side table; the duplicate song itself is
    # rejected later, from id_information.csv, so nothing is lost silently.
    genres = tables["id_genres.csv"].drop_duplicates("id").set_index("id")["genres"]
    langs = tables["id_lang.csv"].drop_duplicates("id").set_index("id")["lang"]

    table = pd.DataFrame({"id": songs["id"].str.strip(), "artist": songs["artist"].str.strip()})
    table["genres"] = [_split_genres(genres.get(song_id, "")) for song_id in table["id"]]
    table["lang"] = [langs.get(song_id) or None for song_id in table["id"]]
    table["audio"] = [root / "audios" / f"{song_id}.mp3" for song_id in table["id"]]
    table["lyrics"] = [
        None if lang == INSTRUMENTAL_LANG else root / "lyrics" / f"{song_id}.txt"
        for song_id, lang in zip(table["id"], table["lang"], strict=True)
    ]
    return table[list(SONG_COLUMNS)]


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a comma-separated manifest with columns id,audio,lyrics,genres,artist.

    `audio` and `lyrics` are relative to the manifest's folder; an empty `lyrics` is a song
    without lyrics; an empty `artist` makes the song its own group.
    """
    path = Path(path)
    table = _read_table(path, ",", MANIFEST_COLUMNS)
    folder = path.parent
    songs = pd.DataFrame({"id": table["id"].str.strip()})
    songs["audio"] = [folder / value.strip() for value in table["audio"]]
    songs["lyrics"] = [folder / value.strip() if value.strip() else None for value in table["lyrics"]]
    songs["genres"] = [_split_genres(value) for value in table["genres"]]
    songs["artist"] = [
        artist.strip() or song_id for artist, song_id in zip(table["artist"], songs["id"], strict=True)
    ]
    songs["lang"] = None
    return songs[list(SONG_COLUMNS)]
