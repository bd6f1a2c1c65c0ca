"""Rerunning `data_prep build`: what is kept, what is rebuilt, what is refused, and the folder lock."""

import os
from pathlib import Path

import pytest
import soundfile as sf

from data_prep import builder
from data_prep.__main__ import main
from data_prep.build_config import BuildConfig
from data_prep.build_error import BuildError
from data_prep.builder import build_shards
from genre_fusion.features.config import DEFAULT_SAMPLE_RATE

pytest_plugins = ["tests.build_fixtures"]
pytestmark = pytest.mark.e2e

SHARD_SIZE = 8  # 36 songs: several shards per split


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_song_whose_audio_changed_rebuilds_its_shard_only(
    manifest_collection: Path, tmp_path: Path, build_shards_from, tone
):
    out = tmp_path / "shards"
    first = build_shards_from(manifest_collection, out, shard_size=SHARD_SIZE)
    shards = first.meta.shard_counts
    sf.write(manifest_collection.parent / "audio" / "s0.wav", tone(2.0, 880.0), DEFAULT_SAMPLE_RATE)

    again = build_shards_from(manifest_collection, out, shard_size=SHARD_SIZE)
    assert again.rebuilt_shards == {"songs or their files changed": 1}
    assert again.resumed_shards == sum(shards.values()) - 1
    build_shards_from(manifest_collection, tmp_path / "clean", shard_size=SHARD_SIZE)
    assert files_of(out) == files_of(tmp_path / "clean")


def test_a_corrected_manifest_is_rebuilt_to_what_a_clean_build_writes(
    manifest_collection: Path, tmp_path: Path, capsys, read_split
):
    good = manifest_collection.read_text()
    manifest_collection.write_text(good.replace("audio/s0.wav", "audio/S0.WAV"))
    out = tmp_path / "shards"
    arguments = ["build", "--manifest", str(manifest_collection), "--clip-seconds", "2", "--mel-bins", "32"]
    arguments += ["--shard-size", str(SHARD_SIZE), "--quiet"]
    assert main([*arguments, "--out", str(out)]) == 0
    assert "missing audio 1" in capsys.readouterr().out

    manifest_collection.write_text(good)
    assert main([*arguments, "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "rejected: none" in summary and "rebuilt" in summary
    kept = {song["id"].decode() for split in ("train", "val", "test") for song in read_split(out, split)}
    assert "s0" in kept
    assert main([*arguments, "--out", str(tmp_path / "clean")]) == 0
    assert files_of(out) == files_of(tmp_path / "clean")


def test_a_deleted_or_truncated_shard_file_is_rebuilt(
    manifest_collection: Path, tmp_path: Path, build_shards_from
):
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out, shard_size=SHARD_SIZE)
    finished = files_of(out)
    deleted, truncated = sorted(out.glob("*.tfrecord"))[:2]
    deleted.unlink()
    with open(truncated, "r+b") as shard:
        shard.truncate(100)

    summary = build_shards_from(manifest_collection, out, shard_size=SHARD_SIZE)
    assert summary.rebuilt_shards == {"shard file missing": 1, "shard file truncated or changed": 1}
    assert files_of(out) == finished


def test_a_failed_start_does_not_block_the_corrected_rerun(manifest_collection: Path, tmp_path: Path, capsys):
    out = tmp_path / "shards"
    arguments = ["build", "--manifest", str(manifest_collection), "--out", str(out), "--clip-seconds", "2"]
    assert main([*arguments, "--text-encoder", str(tmp_path / "no-module")]) == 2
    capsys.readouterr()
    assert main([*arguments, "--quiet"]) == 0


def test_the_same_source_spelled_otherwise_resumes(
    manifest_collection: Path, tmp_path: Path, monkeypatch, manifest_features, build_shards_from
):
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out)
    monkeypatch.chdir(manifest_collection.parent.parent)
    for spelling in ("collection/manifest.csv", "./collection/../collection//manifest.csv"):
        config = BuildConfig(out=str(out), manifest=spelling, features=manifest_features)
        summary = build_shards(config, workers=2, progress=False)
        assert summary.resumed_shards == sum(summary.meta.shard_counts.values())


def test_other_settings_are_refused_naming_each_difference(
    manifest_collection: Path, tmp_path: Path, build_shards_from
):
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out)
    before = files_of(out)
    with pytest.raises(BuildError) as refused:
        build_shards_from(manifest_collection, out, seed=7, top_genres=2)
    assert "--seed 0 -> 7" in str(refused.value) and "--top-genres 10 -> 2" in str(refused.value)
    assert "--shard-size" not in str(refused.value)
    assert files_of(out) == before


def test_a_second_build_into_a_folder_being_written_fails_at_once(
    manifest_collection: Path, tmp_path: Path, capsys
):
    out = tmp_path / "shards"
    (out / builder.PROGRESS_DIR).mkdir(parents=True)
    arguments = ["build", "--manifest", str(manifest_collection), "--out", str(out), "--clip-seconds", "2"]
    with builder._locked(out):  # what the first build holds while it runs
        assert main([*arguments, "--quiet"]) == 2
    assert f"another build is writing {out} (pid {os.getpid()})" in capsys.readouterr().err
    assert not (out / "meta.json").exists()
    assert main([*arguments, "--quiet"]) == 0
