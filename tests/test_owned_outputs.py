"""The rule every --overwrite follows: delete only what the project recorded writing."""

from __future__ import annotations

import pytest

from genre_fusion.files.owned_outputs import (
    MARKER_FILE,
    OutputsError,
    clear_outputs,
    foreign_entries,
    owned_outputs,
    record_outputs,
)


def test_clear_removes_recorded_entries_only_when_nothing_else_is_there(tmp_path):
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "events").write_text("x")
    (run / "config.json").write_text("{}")
    record_outputs(run, "run", ["config.json"])
    record_outputs(run, "run", ["logs"])
    assert owned_outputs(run) == ("run", frozenset({"config.json", "logs"}))

    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputsError, match="notes.txt"):
        clear_outputs(run, "run")
    assert (run / "config.json").is_file() and (run / "logs" / "events").is_file()  # nothing removed

    (run / "notes.txt").unlink()
    clear_outputs(run, "run")
    assert run.is_dir() and not any(run.iterdir())


def test_a_folder_of_another_kind_is_refused(tmp_path):
    record_outputs(tmp_path, "run", ["model.keras"])
    (tmp_path / "model.keras").write_text("weights")
    with pytest.raises(OutputsError, match="holds a run, not an export"):
        clear_outputs(tmp_path, "export")
    with pytest.raises(OutputsError, match="holds a run"):
        record_outputs(tmp_path, "export", ["saved_model.pb"])
    assert (tmp_path / "model.keras").is_file()


def test_without_a_marker_only_legacy_names_are_owned(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "mine").mkdir()
    assert foreign_entries(tmp_path, "run", legacy=["config.json"]) == ["mine"]
    with pytest.raises(OutputsError, match="mine"):
        clear_outputs(tmp_path, "run", legacy=["config.json"])
    assert (tmp_path / "config.json").is_file()


def test_a_damaged_marker_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / MARKER_FILE).write_text("{not json")
    with pytest.raises(OutputsError, match="damaged"):
        clear_outputs(tmp_path, "run")


def test_a_marker_left_half_written_by_a_kill_is_not_foreign(tmp_path):
    record_outputs(tmp_path, "run", ["model.keras"])
    (tmp_path / f"{MARKER_FILE}.4242.tmp").write_text('{"kind": "ru')
    assert foreign_entries(tmp_path, "run") == []
    clear_outputs(tmp_path, "run")
    assert not any(tmp_path.iterdir())
