from pathlib import Path

import pytest

from data_prep.labels import build_vocabulary
from data_prep.sources import SourceError, read_manifest, read_music4all


def write_music4all(
    root: Path, separator: str = "\t", line_end: str = "\n", bom: bool = False, songs: tuple = ()
) -> Path:
    """Music4All's three tables for songs a1 and b2, plus `songs` rows (id, artist, song, album)."""
    root.mkdir(parents=True)
    tables = {
        "id_information.csv": [
            ("id", "artist", "song", "album_name"),
            ("a1", "Ann", "S1", "A"),
            ("b2", "Bob", "S2", "B"),
            *songs,
        ],
        "id_genres.csv": [("id", "genres"), ("a1", "rock,pop"), ("b2", "jazz")],
        "id_lang.csv": [("id", "lang"), ("a1", "en"), ("b2", "INTRUMENTAL")],
    }
    for name, rows in tables.items():
        text = line_end.join(separator.join(row) for row in rows) + line_end
        (root / name).write_text(("\ufeff" if bom else "") + text, newline="")
    return root


def test_music4all_tables_join_into_one_song_table(tmp_path: Path):
    songs = read_music4all(write_music4all(tmp_path / "m4a")).set_index("id")
    assert songs.loc["a1", "genres"] == ("rock", "pop")
    assert songs.loc["a1", "audio"] == tmp_path / "m4a" / "audios" / "a1.mp3"
    assert songs.loc["a1", "lyrics"] == tmp_path / "m4a" / "lyrics" / "a1.txt"
    assert songs.loc["b2", "lyrics"] is None  # INTRUMENTAL: a song without lyrics
    assert songs.loc["b2", "lang"] == "INTRUMENTAL"


def test_quotes_in_titles_a_bom_and_crlf_lose_no_song(tmp_path: Path):
    # An unclosed quote opening a field, then another quote: a quote-aware reader merges the rows between.
    titles = [("c3", "Cy", '"Heroes (live', "Live"), ("d4", "Di", "S4", "D"), ("e5", "Ed", 'Say "Hi"', "E")]
    root = write_music4all(tmp_path / "m4a", line_end="\r\n", bom=True, songs=titles)
    songs = read_music4all(root).set_index("id")
    assert list(songs.index) == ["a1", "b2", "c3", "d4", "e5"]
    assert songs.loc["e5", "artist"] == "Ed"
    assert songs.loc["a1", "genres"] == ("rock", "pop")
    assert songs.loc["b2", "lang"] == "INTRUMENTAL"


def test_a_row_with_a_stray_tab_is_named_by_its_line(tmp_path: Path):
    root = write_music4all(tmp_path / "m4a", songs=[("c3", "Cy", "Tab\tin title", "C")])
    with pytest.raises(SourceError, match=r"information\.csv: line 4 does not have the header's 4 tab-sep"):
        read_music4all(root)


def test_wrong_separator_names_the_file_and_the_separator(tmp_path: Path):
    root = write_music4all(tmp_path / "m4a", separator=",")
    looks = r"information\.csv: the file looks comma-separated; a Music4All table is tab-separated"
    with pytest.raises(SourceError, match=looks):
        read_music4all(root)


def test_missing_table_or_folder(tmp_path: Path):
    root = write_music4all(tmp_path / "m4a")
    (root / "id_lang.csv").unlink()
    with pytest.raises(SourceError, match=r"id_lang\.csv does not exist"):
        read_music4all(root)
    with pytest.raises(SourceError, match="does not exist"):
        read_music4all(tmp_path / "nowhere")
    with pytest.raises(SourceError, match=r"id_genres\.csv is a file, not a folder: --music4all expects"):
        read_music4all(root / "id_genres.csv")


def test_manifest_paths_are_relative_to_its_folder(manifest_collection: Path):
    songs = read_manifest(manifest_collection).set_index("id")
    assert songs.loc["s1", "audio"] == manifest_collection.parent / "audio" / "s1.mp3"
    assert songs.loc["s1", "audio"].is_file()
    assert songs.loc["s0", "genres"] == ("rock", "live")
    assert songs.loc["s0", "artist"] == "artist0"


def test_manifest_empty_lyrics_and_artist(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('id,audio,lyrics,genres,artist\nx,x.wav,,"rock",\n')
    song = read_manifest(manifest).iloc[0]
    assert song["lyrics"] is None
    assert song["artist"] == "x"  # its own group


def test_manifest_structural_faults(tmp_path: Path):
    with pytest.raises(SourceError, match=r"nope\.csv does not exist"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match=r"is a folder, not a file \(expected a manifest"):
        read_manifest(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.csv is empty \(expected a manifest: comma-separated"):
        read_manifest(empty)
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("id;audio;lyrics;genres;artist\nx;x.wav;;rock;a\n")
    with pytest.raises(SourceError, match="file looks semicolon-separated; a manifest is comma-separated"):
        read_manifest(semicolons)
    missing = tmp_path / "missing.csv"
    missing.write_text("id,audio,genres\nx,x.wav,rock\n")
    with pytest.raises(SourceError, match="missing lyrics, artist"):
        read_manifest(missing)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("id,audio,lyrics,genres,artist\nx,x.wav,,rock,Beyoncé\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"latin1\.csv is not UTF-8 text"):
        read_manifest(latin1)


def test_unquoted_genre_lists_are_named_by_line_with_the_fix(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    # Every row one field longer than the header: a CSV reader would take the ids for an index.
    manifest.write_text("id,audio,lyrics,genres,artist\nx,x.wav,,rock,pop,Ann\ny,y.wav,,jazz,soul,Bob\n")
    with pytest.raises(SourceError, match=r'lines 2, 3 do not have the header\'s 5 .* quote .*"rock,pop"'):
        read_manifest(manifest)
    manifest.write_text('id,audio,lyrics,genres,artist\nx,x.wav,,"rock,pop,Ann\ny,y.wav,,jazz,Bob\n')
    with pytest.raises(SourceError, match=r"m\.csv, line 2: unexpected end of data"):
        read_manifest(manifest)


def test_a_manifest_written_on_windows_reads_the_same(tmp_path: Path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "x.wav").write_bytes(b"RIFF")
    manifest = tmp_path / "m.csv"
    rows = ["id, audio, lyrics, genres, artist", 'x, audio\\x.wav, text\\x.txt, "rock,pop", Ann', ""]
    manifest.write_text("\ufeff" + "\r\n".join(rows), newline="")
    song = read_manifest(manifest).iloc[0]
    assert song["audio"] == tmp_path / "audio" / "x.wav" and song["audio"].is_file()
    assert song["lyrics"] == tmp_path / "text" / "x.txt"
    assert (song["id"], song["genres"], song["artist"]) == ("x", ("rock", "pop"), "Ann")


def test_genre_names_differing_in_case_or_spacing_are_one_genre(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        'id,audio,lyrics,genres,artist\nx,x.wav,,"Rock, rock ,Hip  Hop",A\n'
        'y,y.wav,,"ROCK",B\nz,z.wav,,"hip hop",C\n'
    )
    songs = read_manifest(manifest)
    assert list(songs["genres"]) == [("rock", "hip hop"), ("rock",), ("hip hop",)]
    assert build_vocabulary(songs["genres"], 10) == ("hip hop", "rock")


def test_every_listed_row_is_kept_an_empty_id_too(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('id,audio,lyrics,genres,artist\nx,x.wav,,rock,A\n\n,y.wav,,rock,B\n ,z.wav,,pop,\n')
    assert list(read_manifest(manifest)["id"]) == ["x", "", ""]  # plan_build rejects them as `empty id`
    root = write_music4all(tmp_path / "m4a", songs=[("", "Cy", "S3", "C")])
    assert list(read_music4all(root)["id"]) == ["a1", "b2", ""]
