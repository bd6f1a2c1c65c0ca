"""Source readers: a Music4All folder or a CSV manifest -> one table of songs.

Both return a `pandas.DataFrame` with one row per listed song and the columns of `SONG_COLUMNS`:
`id`, `audio` (Path), `lyrics` (Path or None: a song without lyrics), `genres` (tuple of
case-folded names, ordered, no repeats), `artist` (grouping key of the split), `lang` (or None
when unknown). No listed row is dropped: an empty id stays `""` for `plan_build` to reject as
`empty id`. Structural faults raise `SourceError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

SONG_COLUMNS = ("id", "audio", "lyrics", "genres", "artist", "lang")
INSTRUMENTAL_LANG = "INTRUMENTAL"  # spelled so in Music4All's id_lang.csv
MUSIC4ALL_TABLES = {
    "id_information.csv": ("id", "artist", "song", "album_name"),
    "id_genres.csv": ("id", "genres"),
    "id_lang.csv": ("id", "lang"),
}
AUDIO_FOLDER, AUDIO_SUFFIX = "audios", ".mp3"  # Music4All's <root>/audios/<id>.mp3
LYRICS_FOLDER, LYRICS_SUFFIX = "lyrics", ".txt"  # and <root>/lyrics/<id>.txt
MANIFEST_COLUMNS = ("id", "audio", "lyrics", "genres", "artist")
SEPARATORS = ("\t", ",", ";", "|")
LINES_NAMED = 10  # line numbers an error lists before it only counts the rest


class SourceError(ValueError):
    """A collection that cannot be read as a whole."""


def _separator_name(separator: str) -> str:
    return {"\t": "tab-separated", ",": "comma-separated", ";": "semicolon-separated"}.get(
        separator, f"{separator!r}-separated"
    )


def _line_list(lines: list[int]) -> str:
    named = ", ".join(map(str, lines[:LINES_NAMED]))
    return named + (f" and {len(lines) - LINES_NAMED} more" if len(lines) > LINES_NAMED else "")


def read_table(
    path: Path, separator: str, columns: tuple[str, ...], kind: str, quoted: bool, fix: str
) -> pd.DataFrame:
    """Read the delimited table `path` (header row; UTF-8, a BOM and CRLF allowed) -> one str
    column per name of `columns`, one row per non-blank line.

    `kind` names the file in messages ("a manifest"); `quoted`: fields may be quoted (a manifest)
    or quotes are plain characters (Music4All, whose titles hold unpaired `"`); `fix` tells how to
    repair a row whose field count differs from the header's. Raises `SourceError`.
    """
    expected = f"{kind}: {_separator_name(separator)}, header row with columns {', '.join(columns)}"
    if path.is_dir():
        raise SourceError(f"{path} is a folder, not a file (expected {expected})")
    if not path.is_file():
        raise SourceError(f"{path} does not exist (expected {expected})")
    rows, bad_lines, line = [], [], 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(
                handle,
                delimiter=separator,
                quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
                skipinitialspace=True,
                strict=True,
            )
            header = next((row for row in reader if row), None)
            if header is None:
                raise SourceError(f"{path} is empty (expected {expected})")
            header = [name.strip() for name in header]
            missing = [column for column in columns if column not in header]
            if missing:
                raise SourceError(_missing_columns_message(path, header, separator, columns, kind, missing))
            line = reader.line_num + 1  # where the next row starts: a quoted field may span lines
            for row in reader:
                if len(row) == len(header):
                    rows.append(row)
                elif row:  # a blank line lists no song
                    bad_lines.append(line)
                line = reader.line_num + 1
    except csv.Error as error:
        raise SourceError(
            f"{path}, line {line}: {error} "
            "(a quoted field must end with a quote; quotes inside it are doubled)"
        ) from error
    except UnicodeDecodeError as error:
        raise SourceError(f"{path} is not UTF-8 text ({error}); save it as UTF-8") from error
    if bad_lines:
        raise SourceError(
            f"{path}: line{'s' if len(bad_lines) > 1 else ''} {_line_list(bad_lines)} "
            f"{'do' if len(bad_lines) > 1 else 'does'} not have the header's {len(header)} "
            f"{_separator_name(separator)} fields ({', '.join(header)}); {fix}"
        )
    positions = [header.index(column) for column in columns]
    return pd.DataFrame(
        {column: [row[i] for row in rows] for column, i in zip(columns, positions, strict=True)}, dtype=object
    )


def _missing_columns_message(
    path: Path, header: list[str], separator: str, columns: tuple[str, ...], kind: str, missing: list[str]
) -> str:
    """Name the separator the header looks written with, else the missing columns."""
    read = separator.join(header)
    # The other separator that splits the header into the most of the missing names, if any.
    found = {sep: len(set(missing) & {name.strip() for name in read.split(sep)}) for sep in SEPARATORS}
    likely = max((sep for sep in SEPARATORS if sep != separator), key=found.get)
    if found[likely]:
        return (
            f"{path}: the file looks {_separator_name(likely)}; {kind} is {_separator_name(separator)} "
            f"with columns {', '.join(columns)} (header read: {read!r})"
        )
    return (
        f"{path}: expected {_separator_name(separator)} columns {', '.join(columns)}, "
        f"missing {', '.join(missing)}; header read: {read!r}"
    )


def genre_name(name: str) -> str:
    """' Indie  Rock' -> 'indie rock': names differing only in case or spacing are one genre."""
    return " ".join(name.split()).casefold()


def _split_genres(value: str) -> tuple[str, ...]:
    """'Rock, indie ,rock' -> ('rock', 'indie')."""
    names = (genre_name(name) for name in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def read_music4all(root: str | Path) -> pd.DataFrame:
    """Read Music4All's tab-separated tables (id_information, id_genres, id_lang) under `root`.

    Quotes are plain characters there (titles hold unpaired `"`). Songs whose language is
    `INTRUMENTAL` are songs without lyrics, whatever their file holds.
    """
    root = Path(root)
    if root.is_file():
        raise SourceError(
            f"{root} is a file, not a folder: --music4all expects the Music4All folder "
            "(id_information.csv, id_genres.csv, id_lang.csv, audios/, lyrics/)"
        )
    if not root.is_dir():
        raise SourceError(f"Music4All folder {root} does not exist")
    tables = {
        name: read_table(
            root / name,
            "\t",
            columns,
            "a Music4All table",
            quoted=False,
            fix="a field holds a tab, or a row lost one",
        )
        for name, columns in MUSIC4ALL_TABLES.items()
    }
    songs = tables["id_information.csv"]
    # First row wins for an id listed twice in a side table; the duplicate song itself is
    # rejected later, from id_information.csv, so nothing is lost silently.
    genres, langs = (
        tables[name].assign(id=tables[name]["id"].str.strip()).drop_duplicates("id").set_index("id")[column]
        for name, column in (("id_genres.csv", "genres"), ("id_lang.csv", "lang"))
    )
    table = pd.DataFrame({"id": songs["id"].str.strip(), "artist": songs["artist"].str.strip()})
    table["genres"] = [_split_genres(genres.get(song_id, "")) for song_id in table["id"]]
    table["lang"] = [langs.get(song_id, "").strip() or None for song_id in table["id"]]
    table["audio"] = [root / AUDIO_FOLDER / f"{song_id}{AUDIO_SUFFIX}" for song_id in table["id"]]
    table["lyrics"] = [
        None if lang == INSTRUMENTAL_LANG else root / LYRICS_FOLDER / f"{song_id}{LYRICS_SUFFIX}"
        for song_id, lang in zip(table["id"], table["lang"], strict=True)
    ]
    return table[list(SONG_COLUMNS)]


def _manifest_path(folder: Path, value: str) -> Path | None:
    """A manifest's audio/lyrics field -> its path (None when empty). `\\` is a separator too, so a
    manifest written on Windows reads the same on Linux (a `\\` in a file name is not supported)."""
    value = value.strip().replace("\\", "/")
    return folder / value if value else None


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a comma-separated manifest with columns id,audio,lyrics,genres,artist (header names may
    be padded with spaces; other columns are ignored).

    `audio` and `lyrics` are relative to the manifest's folder, with `/` or `\\` separators; an
    empty `lyrics` is a song without lyrics; an empty `artist` makes the song its own group. A
    `genres` field listing several names must be quoted ("rock,pop"): a row with more fields
    than the header raises `SourceError` naming its line.
    """
    path = Path(path)
    table = read_table(
        path,
        ",",
        MANIFEST_COLUMNS,
        "a manifest",
        quoted=True,
        fix='quote a field that holds commas, such as several genres: "rock,pop"',
    )
    folder = path.parent
    songs = pd.DataFrame({"id": table["id"].str.strip()})
    # An empty audio field stays the folder itself, which decoding rejects as `missing audio`.
    songs["audio"] = [_manifest_path(folder, value) or folder for value in table["audio"]]
    songs["lyrics"] = [_manifest_path(folder, value) for value in table["lyrics"]]
    songs["genres"] = [_split_genres(value) for value in table["genres"]]
    songs["artist"] = [
        artist.strip() or song_id for artist, song_id in zip(table["artist"], songs["id"], strict=True)
    ]
    songs["lang"] = None
    return songs[list(SONG_COLUMNS)]
