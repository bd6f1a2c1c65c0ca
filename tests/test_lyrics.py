"""Lyrics files: text, missing, or a stable reason for rejected.csv."""

from pathlib import Path

import pytest

from genre_fusion.features.lyrics import LyricsError, read_lyrics


def test_text_missing_and_invalid_files(tmp_path: Path):
    (tmp_path / "ok.txt").write_text("[Chorus]\nla la love\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("coração".encode("latin-1"))
    assert read_lyrics(tmp_path / "ok.txt") == "[Chorus]\nla la love\n"
    assert read_lyrics(tmp_path / "missing.txt") is None
    with pytest.raises(LyricsError) as invalid:
        read_lyrics(tmp_path / "latin1.txt")
    assert invalid.value.reason == "lyrics not valid UTF-8"


def test_a_file_that_cannot_be_read_is_a_lyrics_error_not_an_os_error(tmp_path: Path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("words")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(LyricsError, match="Permission denied") as unreadable:
        read_lyrics(path)
    assert unreadable.value.reason == "unreadable lyrics"
