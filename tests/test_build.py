"""`data_prep build` end to end on tiny generated collections."""

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep.__main__ import main
from data_prep.build_config import BuildConfig
from data_prep.build_error import BuildError
from data_prep.builder import build_shards
from data_prep.plan import plan_build, read_source
from data_prep.synth import write_demo_collection
from genre_fusion.data.shards import read_meta
from genre_fusion.data.train_statistics import read_statistics
from genre_fusion.features.audio import decode_audio
from genre_fusion.features.log_mel import LogMelSpectrogram
from genre_fusion.features.principal_words import principal_words

pytest_plugins = ["tests.build_fixtures"]
pytestmark = pytest.mark.e2e


def test_shards_hold_every_song_once_with_the_features_of_the_shared_implementation(
    manifest_collection: Path, tmp_path: Path, manifest_features, build_shards_from, read_split
):
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out, shard_size=8)

    meta = read_meta(out)
    assert meta.genres == ("jazz", "pop", "rock")  # "live" is on every song but nobody's first genre
    splits = pd.read_csv(out / "splits.csv")
    assert len(splits) == 36 and splits["id"].is_unique
    assert meta.split_sizes == splits["split"].value_counts().to_dict()
    assert pd.read_csv(out / "rejected.csv").empty
    assert [sum(counts) for counts in meta.genre_counts.values()] == list(meta.split_sizes.values())
    assert all(count > 0 for count in meta.genre_counts["train"])

    manifest = pd.read_csv(manifest_collection).set_index("id")
    layer = LogMelSpectrogram.from_features(manifest_features)
    for split in ("train", "val", "test"):
        songs = read_split(out, split)
        assert sorted(s["id"].decode() for s in songs) == sorted(splits.loc[splits["split"] == split, "id"])
        song = songs[0]
        row = manifest.loc[song["id"].decode()]
        clip = decode_audio(
            manifest_collection.parent / row["audio"],
            manifest_features.sample_rate,
            manifest_features.clip_seconds,
        )
        expected = layer(clip.waveform[None]).numpy()[0]
        # batched vs single-song float32 round-off, stored as float16
        np.testing.assert_allclose(song["log_mel"], expected, atol=0.02, rtol=1e-3)
        lyrics = (manifest_collection.parent / row["lyrics"]).read_text()
        assert song["words"].decode() == principal_words([lyrics], manifest_features.max_tokens)[0]
        assert meta.genres[song["labels"][0]] == row["genres"].split(",")[0]
        assert song["audio_seconds"] == pytest.approx(2.0, abs=0.06)


def test_training_statistics_are_those_of_the_training_songs_alone(
    manifest_collection: Path, tmp_path: Path, manifest_features, read_split
):
    out = tmp_path / "shards"
    config = BuildConfig(
        out=str(out), manifest=str(manifest_collection), features=manifest_features, shard_size=8
    )
    plan = plan_build(config, read_source(config))
    held_out = next(task for shard in plan.shards if shard.split != "train" for task in shard.tasks)
    held_out.lyrics.write_text("a heldout word only\n")
    build_shards(config, workers=2, progress=False)

    train = read_split(out, "train")
    log_mels = np.concatenate([song["log_mel"].astype(np.float64) for song in train], axis=1)
    statistics = read_statistics(out)
    np.testing.assert_allclose(statistics.mean, log_mels.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(statistics.variance, log_mels.var(axis=1), rtol=1e-4)
    words = collections.Counter(word for song in train for word in song["words"].decode().split())
    assert list(statistics.ranked_words) == sorted(words, key=lambda word: (-words[word], word))
    assert "heldout" not in statistics.ranked_words


def test_artists_never_cross_splits(manifest_collection: Path, tmp_path: Path, build_shards_from):
    build_shards_from(manifest_collection, tmp_path / "shards")
    splits = pd.read_csv(tmp_path / "shards" / "splits.csv").set_index("id")["split"]
    artists = pd.read_csv(manifest_collection).set_index("id")["artist"]
    assert (splits.groupby(artists).nunique() == 1).all()


KILL_AFTER_BATCHES = """
import os, signal, sys
from data_prep import builder
original = builder.SongFeaturizer.__call__
calls = []
def featurize_then_die(self, songs):
    calls.append(1)
    if len(calls) == {batches}:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, songs)
builder.SongFeaturizer.__call__ = featurize_then_die
if __name__ == "__main__":
    from data_prep.__main__ import main
    sys.exit(main(sys.argv[1:]))
"""


def test_a_build_killed_with_sigkill_resumes_to_the_same_files(manifest_collection: Path, tmp_path: Path):
    arguments = [
        "build",
        "--manifest",
        str(manifest_collection),
        "--clip-seconds",
        "2",
        "--mel-bins",
        "32",
        "--shard-size",
        "5",
        "--workers",
        "1",
        "--quiet",
    ]
    interrupted = tmp_path / "interrupted"
    script = tmp_path / "die.py"
    # BATCH_SIZE 16 > shard size: one featurizer call per shard, so the 4th call dies mid-build.
    script.write_text(KILL_AFTER_BATCHES.format(batches=4))
    killed = subprocess.run(
        [sys.executable, str(script), *arguments, "--out", str(interrupted)],
        capture_output=True,
        cwd=Path(__file__).parents[1],
    )
    assert killed.returncode == -9
    assert not (interrupted / "meta.json").exists()
    assert len(list((interrupted / "_progress").glob("*.tfrecord.json"))) == 3

    assert main([*arguments, "--out", str(interrupted)]) == 0
    clean = tmp_path / "clean"
    assert main([*arguments, "--out", str(clean)]) == 0

    files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(interrupted) for p in interrupted.rglob("*") if p.is_file())
    for name in files:
        if name.name != "meta.json":
            assert (clean / name).read_bytes() == (interrupted / name).read_bytes(), name
    assert read_meta(clean) == read_meta(interrupted)


def test_a_different_build_in_the_same_folder_is_refused(
    manifest_collection: Path, tmp_path: Path, build_shards_from
):
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out)
    build_shards_from(manifest_collection, out)  # the same build again: nothing to do, still fine
    with pytest.raises(BuildError, match="other settings"):
        build_shards_from(manifest_collection, out, seed=7)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="choose an empty --out"):
        build_shards_from(manifest_collection, tmp_path / "occupied")


def test_per_song_faults_are_recorded_and_the_build_goes_on(
    manifest_collection: Path, tmp_path: Path, build_shards_from, read_split
):
    root = manifest_collection.parent
    (root / "audio" / "s3.mp3").write_bytes(b"not an mp3 at all" * 50)
    (root / "audio" / "s4.wav").unlink()
    (root / "text" / "s5.txt").write_bytes(b"\xff\xfe bad bytes")
    (root / "text" / "s6.txt").unlink()
    (root / "text" / "s7.txt").write_text("  \n")
    with open(manifest_collection, "a") as manifest:
        manifest.write('s1,audio/s1.mp3,text/s1.txt,"rock",artist1\n')  # duplicate id
        manifest.write('s99,audio/s2.wav,text/s2.txt,"polka",artist1\n')  # genre outside the top 3
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out, top_genres=3)

    rejected = pd.read_csv(out / "rejected.csv").set_index("id")["reason"].to_dict()
    assert rejected == {
        "s1": "duplicate id",
        "s99": "no genre in vocabulary",
        "s3": "undecodable audio",
        "s4": "missing audio",
        "s5": "lyrics not valid UTF-8",
    }
    meta = read_meta(out)
    assert sum(meta.split_sizes.values()) == 36 - 3  # s6 and s7 kept as songs without lyrics
    songs = {s["id"].decode(): s for split in ("train", "val", "test") for s in read_split(out, split)}
    assert songs["s6"]["words"] == songs["s7"]["words"] == b""

    build_shards_from(manifest_collection, tmp_path / "strict", top_genres=3, require_lyrics=True)
    strict = pd.read_csv(tmp_path / "strict" / "rejected.csv").set_index("id")["reason"]
    assert strict["s6"] == "missing lyrics" and strict["s7"] == "empty lyrics"


def test_limit_takes_the_first_songs(manifest_collection: Path, tmp_path: Path, build_shards_from):
    build_shards_from(manifest_collection, tmp_path / "shards", limit=20)
    assert sum(read_meta(tmp_path / "shards").split_sizes.values()) == 20


def test_lyrics_rejections_come_before_the_vocabulary_and_the_split(
    manifest_collection: Path, tmp_path: Path, build_shards_from
):
    root = manifest_collection.parent
    rows = manifest_collection.read_text().splitlines()
    jazz = [row.split(",")[0] for row in rows if '"jazz,' in row]
    (root / "text" / f"{jazz[0]}.txt").unlink()
    (root / "text" / f"{jazz[1]}.txt").write_bytes(b"")
    for song in jazz[2:]:  # their manifest rows name no lyrics file
        rows = [row.replace(f",text/{song}.txt,", ",,") for row in rows]
    manifest_collection.write_text("\n".join(rows) + "\n")
    out = tmp_path / "shards"
    build_shards_from(manifest_collection, out, require_lyrics=True)

    meta = read_meta(out)
    assert meta.genres == ("pop", "rock")  # jazz had no song left to label
    assert all(count > 0 for count in meta.genre_counts["train"])
    rejected = pd.read_csv(out / "rejected.csv").set_index("id")["reason"]
    assert rejected[jazz[0]] == "missing lyrics" and rejected[jazz[1]] == "empty lyrics"
    assert set(rejected[jazz[2:]]) == {"no lyrics"}


def test_every_listed_song_is_kept_or_rejected(tmp_path: Path):
    collection = tmp_path / "music4all"
    write_demo_collection(collection, songs=40, genres=2, seconds=1.0, faults=True, progress=False)
    with open(collection / "id_information.csv", "a", encoding="utf-8") as information:
        information.write("\tAn Artist\tA Song\tAn Album\n")  # a row with an empty id
    out = tmp_path / "shards"
    arguments = ["build", "--music4all", str(collection), "--out", str(out), "--clip-seconds", "1"]
    assert main([*arguments, "--quiet"]) == 0

    listed = pd.read_csv(collection / "id_information.csv", sep="\t", keep_default_na=False, quoting=3)
    kept = pd.read_csv(out / "splits.csv", keep_default_na=False)
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False)
    assert len(kept) + len(rejected) == len(listed)
    assert set(kept["id"]) | set(rejected["id"]) == set(listed["id"])
    assert "empty id" in set(rejected["reason"])


def test_a_build_that_keeps_no_song_fails_and_lists_every_song(
    manifest_collection: Path, tmp_path: Path, capsys
):
    moved = tmp_path / "elsewhere" / "manifest.csv"  # away from the files its relative paths name
    moved.parent.mkdir()
    moved.write_text(manifest_collection.read_text())
    out = tmp_path / "shards"
    arguments = ["build", "--out", str(out), "--clip-seconds", "2", "--quiet"]
    assert main([*arguments, "--manifest", str(moved)]) == 2
    error = capsys.readouterr().err
    assert "missing audio 36" in error and str(out / "rejected.csv") in error
    assert len(pd.read_csv(out / "rejected.csv")) == 36
    assert not (out / "meta.json").exists()

    assert main([*arguments, "--manifest", str(manifest_collection)]) == 0  # the corrected rerun
    assert sum(read_meta(out).split_sizes.values()) == 36


def test_a_build_that_leaves_val_without_songs_fails(
    manifest_collection: Path, tmp_path: Path, capsys, manifest_features
):
    config = BuildConfig(
        out=str(tmp_path / "shards"), manifest=str(manifest_collection), features=manifest_features
    )
    plan = plan_build(config, read_source(config))
    val = [task for shard in plan.shards if shard.split == "val" for task in shard.tasks]
    for task in val:
        task.audio.write_bytes(b"not audio at all " * 100)  # found only by decoding
    arguments = ["build", "--manifest", str(manifest_collection), "--out", config.out, "--quiet"]
    assert main([*arguments, "--clip-seconds", "2", "--mel-bins", "32"]) == 2
    error = capsys.readouterr().err
    assert "leaves val without songs" in error and f"undecodable audio {len(val)}" in error
    assert set(pd.read_csv(Path(config.out) / "rejected.csv")["id"]) == {task.id for task in val}
    assert not (Path(config.out) / "meta.json").exists()


def test_missing_lyrics_files_are_counted_and_warned_about(manifest_collection: Path, tmp_path: Path, capsys):
    for lyrics in (manifest_collection.parent / "text").iterdir():
        lyrics.unlink()
    out = tmp_path / "shards"
    arguments = ["build", "--manifest", str(manifest_collection), "--out", str(out), "--clip-seconds", "2"]
    assert main([*arguments, "--quiet"]) == 0
    assert "warning: 36 of 36 kept songs have no lyrics file (missing lyrics: 36)" in capsys.readouterr().err
    assert read_meta(out).lyrics_missing == 36

    values = json.loads((out / "meta.json").read_text())
    del values["lyrics_missing"]  # meta.json of an earlier version
    (out / "meta.json").write_text(json.dumps(values))
    assert read_meta(out).lyrics_missing == 0
