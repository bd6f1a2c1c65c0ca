from pathlib import Path

import pytest

from data_prep.sources import SourceError, read_manifest, read_music4all


def write_music4all(root: Path, separator: str = "\t") -> Path:
    root.mkdir(parents=True)
    tables = {
        "id_information.csv": [
            ("id", "artist", "song", "album_name"),
            ("a1", "Ann", "S1", "A"),
            ("b2", "Bob", "S2", "B"),
        ],
        "id_genres.csv": [("id", "genres"), ("a1", "rock,pop"), ("b2", "jazz")],
        "id_lang.csv": [("id", "lang"), ("a1", "en"), ("b2", "INTRUMENTAL")],
    }
    for name, rows in tables.items():
        (root / name).write_text("\n".join(separator.join(row) for row in rows) + "\n")
    return root


def test_music4all_tables_join_into_one_song_table(tmp_path: Path):
    songs = read_music4all(write_music4all(tmp_path / "m4a")).set_index("id")
    assert songs.loc["a1", "genres"] == ("rock", "pop")
    assert songs.loc["a1", "audio"] == tmp_path / "m4a" / "audios" / "a1.mp3"
    assert songs.loc["a1", "lyrics"] == tmp_path / "m4a" / "lyrics" / "a1.txt"
    assert songs.loc["b2", "lyrics"] is None  # INTRUMENTAL: a song without lyrics
    assert songs.loc["b2", "lang"] == "INTRUMENTAL"


def test_wrong_separator_names_the_file_and_what_was_expected(tmp_path: Path):
    root = write_music4all(tmp_path / "m4a", separator=",")
    with pytest.raises(SourceError, match=r"id_information\.csv: expected tab-separated.*comma-separated"):
        read_music4all(root)


def test_missing_table_or_folder(tmp_path: Path):
    root = write_music4all(tmp_path / "m4a")
    (root / "id_lang.csv").unlink()
    with pytest.raises(SourceError, match=r"id_lang\.csv does not exist"):
        read_music4all(root)
    with pytest.raises(SourceError, match="does not exist"):
        read_music4all(tmp_path / "nowhere")


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
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("id;audio;lyrics;genres;artist\nx;x.wav;;rock;a\n")
    with pytest.raises(SourceError, match="semicolon-separated"):
        read_manifest(semicolons)
    missing = tmp_path / "missing.csv"
    missing.write_text("id,audio,genres\nx,x.wav,rock\n")
    with pytest.raises(SourceError, match="missing lyrics, artist"):
        read_manifest(missing)
