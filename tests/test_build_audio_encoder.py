"""`data_prep build --audio-encoder`: shards of a pretrained audio encoder's embeddings, made once per
song by the build (musicnn with its real weights, and a YAMNet-like TF Hub stand-in), resumed
after a kill, trained on without the encoder, and every way a bad encoder is refused."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_prep import featurizer
from data_prep.__main__ import main
from genre_fusion.data.schema import FEATURE_SPEC, parse_song
from genre_fusion.data.shards import read_meta, shard_files
from genre_fusion.data.train_statistics import AUDIO_EMBEDDINGS_KEYS, STATISTICS_FILE, read_statistics
from genre_fusion.encoders import audio, handles, musicnn
from genre_fusion.encoders.audio import load_audio_encoder
from genre_fusion.features.audio import decode_audio
from genre_fusion.training.cli import main as train_main
from tests import audio_standins, hub_standins
from tuning.space import SearchSpace, conv_mel_bins

pytestmark = pytest.mark.e2e

# 2 s songs in 6 s clips: musicnn's 2.992 s patches give 2 per clip, of which 1 covers a song;
# the YAMNet-like 0.96 s frames every 0.48 s give 11 per clip, 3 per song.
CLIP_SECONDS = "6"
SHARD_SIZE = 8  # 36 songs: several shards per split, one featurizer call (BATCH_SIZE 16) each
MUSICNN = "musicnn-msd"
# output key, width, patch and hop seconds, patches per clip; a module's patch length is not
# observable, so a local module records its hop (only YAMNet's and VGGish's handles are known).
EXPECTED = {MUSICNN: ("max_pool", 753, 2.992, 2.992, 2), "yamnet-like": ("embeddings", 24, 0.48, 0.48, 11)}
# float16 storage of float32 embeddings.
RTOL = 1e-3
RATE = 16_000  # what musicnn and every documented TF Hub audio module take
TINY_MODEL = ["--epochs", "1", "--batch-size", "8", "--dense-units", "8", "--lstm-layers", "1"]
TINY_MODEL += ["--lstm-units", "4", "--vocabulary-size", "100", "--embedding-dim", "4"]

KILL_AT_SECOND_SHARD = """
import os, signal, sys
from data_prep import builder
original = builder.SongFeaturizer.__call__
calls = []
def featurize_then_die(self, songs):
    calls.append(1)
    if len(calls) == 2:  # one call per shard: the first shard is finished, the second not
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, songs)
builder.SongFeaturizer.__call__ = featurize_then_die
if __name__ == "__main__":
    from data_prep.__main__ import main
    sys.exit(main(sys.argv[1:]))
"""


def build_arguments(manifest: Path, encoder: str) -> list[str]:
    return ["build", "--manifest", str(manifest), "--clip-seconds", CLIP_SECONDS, "--audio-encoder", encoder]


@dataclass(frozen=True)
class Build:
    """A finished build: its folder and arguments (without --out), the encoder the build loaded
    (its `calls` count what it embedded) and the summary line printed."""

    out: Path
    arguments: list[str]
    encoder: audio.AudioEncoder
    summary: str


def _build(manifest: Path, encoder: str, out: Path) -> Build:
    arguments = [*build_arguments(manifest, encoder), "--shard-size", str(SHARD_SIZE), "--quiet"]
    loaded = []

    def recording_loader(features):
        loaded.append(load(features))
        return loaded[-1]

    load = featurizer.load_audio_encoder
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(featurizer, "load_audio_encoder", recording_loader)
        assert main([*arguments, "--out", str(out)]) == 0
    (encoder_loaded,) = loaded
    return Build(out, arguments, encoder_loaded, printed.getvalue())


@pytest.fixture(scope="module")
def yamnet_like(tmp_path_factory) -> Path:
    return audio_standins.build_yamnet_like(tmp_path_factory.mktemp("yamnet") / "module", outputs="dict")


@pytest.fixture(scope="module")
def builds(shared_manifest_collection: Path, yamnet_like: Path, tmp_path_factory) -> dict[str, Build]:
    root = tmp_path_factory.mktemp("audio_encoder_shards")
    names = {MUSICNN: MUSICNN, "yamnet-like": str(yamnet_like)}
    return {key: _build(shared_manifest_collection, name, root / key) for key, name in names.items()}


def songs_of(out: Path) -> dict[str, dict]:
    """Each song as parse_song reads it (NumPy values), and its raw `log_mel` bytes."""
    meta = read_meta(out)
    files = [str(f) for split in ("train", "val", "test") for f in shard_files(out, split)]
    songs = {}
    for record in tf.data.TFRecordDataset(files):
        song = {key: value.numpy() for key, value in parse_song(record, meta.features).items()}
        song["raw_log_mel"] = tf.io.parse_single_example(record, FEATURE_SPEC)["log_mel"].numpy()
        songs[song["id"].decode()] = song
    return songs


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_meta_records_the_encoder_and_the_summary_names_it(builds, key):
    build = builds[key]
    output_key, width, patch_seconds, hop_seconds, patches = EXPECTED[key]
    features = json.loads((build.out / "meta.json").read_text())["features"]
    assert features["audio_encoder"] == build.encoder.spec.name
    assert features["sample_rate"] == build.encoder.spec.sample_rate == RATE
    assert features["audio_output_key"] == output_key
    assert features["audio_embedding_width"] == width
    assert features["audio_patch_seconds"] == pytest.approx(patch_seconds)
    assert features["audio_hop_seconds"] == pytest.approx(hop_seconds)
    assert features["audio_patches"] == patches
    assert "log_mel" not in json.loads((build.out / "meta.json").read_text())
    assert f"audio: {build.encoder.spec.name} {output_key} ({width} wide" in build.summary
    settings = json.loads((build.out / "_progress" / "plan.json").read_text())["settings"]
    assert settings["audio_encoder"] == build.encoder.spec.name and "audio_patches" not in settings


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_song_is_encoded_once_and_stored_as_the_encoder_embeds_it_at_16_khz(
    builds, shared_manifest_collection: Path, key
):
    build = builds[key]
    songs = songs_of(build.out)
    assert build.encoder.calls == len(songs) == 36
    assert all(song["raw_log_mel"] == b"" for song in songs.values())  # no log-mel in the shards

    manifest = pd.read_csv(shared_manifest_collection).set_index("id")
    ids = sorted(songs)
    clips = [
        decode_audio(shared_manifest_collection.parent / manifest.loc[song_id, "audio"], RATE, 6.0)
        for song_id in ids
    ]
    reference = load_audio_encoder(build.encoder.spec.name).embed(np.stack([clip.waveform for clip in clips]))
    spec = build.encoder.spec
    for song_id, clip, expected in zip(ids, clips, reference, strict=True):
        song = songs[song_id]
        valid = song["audio_patches"]
        # Only the patches that cover the song's 2 s of audio; at least one.
        assert valid == max(1, spec.patches(round(clip.seconds * RATE))) < len(expected)
        stored = song["audio_embeddings"].astype(np.float32)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(stored[:valid], expected[:valid], rtol=RTOL, atol=RTOL * scale)
        assert not stored[valid:].any()


def test_statistics_are_per_embedding_dimension_of_the_training_songs(builds):
    out = builds[MUSICNN].out
    summary = json.loads((out / STATISTICS_FILE).read_text())
    assert set(AUDIO_EMBEDDINGS_KEYS) <= set(summary) and "log_mel_mean" not in summary
    meta = read_meta(out)
    dataset = tf.data.TFRecordDataset([str(f) for f in shard_files(out, "train")])
    songs = [parse_song(record, meta.features) for record in dataset]
    patches = np.concatenate(
        [song["audio_embeddings"].numpy()[: song["audio_patches"]].astype(np.float64) for song in songs]
    )
    statistics = read_statistics(out)
    assert statistics.mean.shape == (EXPECTED[MUSICNN][1],) and summary["patches"] == len(patches)
    np.testing.assert_allclose(statistics.mean, patches.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(statistics.variance, patches.var(axis=0), rtol=1e-4, atol=1e-6)


def test_training_reads_the_embeddings_and_never_runs_the_encoder(builds, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the audio encoder ran during training")

    # Every way to an encoder: embedding, and loading musicnn's weights or any TF Hub module.
    monkeypatch.setattr(audio.AudioEncoder, "embed", refuse)
    monkeypatch.setattr(musicnn, "musicnn_checkpoint", refuse)
    monkeypatch.setattr(handles, "module_path", refuse)
    assert train_main(["--data", str(builds[MUSICNN].out), "--run", str(tmp_path / "run"), *TINY_MODEL]) == 0
    assert (tmp_path / "run" / "history.csv").is_file()


def test_embeddings_shards_without_their_statistics_are_refused(builds, tmp_path, capsys):
    shards = tmp_path / "shards"
    shutil.copytree(builds[MUSICNN].out, shards)
    (shards / STATISTICS_FILE).unlink()
    assert train_main(["--data", str(shards), "--run", str(tmp_path / "run"), *TINY_MODEL]) == 2
    assert f"lacks {STATISTICS_FILE}" in capsys.readouterr().err


def test_the_tuner_searches_no_conv_blocks_on_embeddings(builds):
    hp = kt.HyperParameters()
    features = read_meta(builds[MUSICNN].out).features
    config = SearchSpace().declare(hp, ("audio", "lyrics"), conv_mel_bins(features))
    assert "conv_blocks" not in hp.values and "conv_filters" not in hp.values
    assert {"lstm_units", "dense_units", "fusion"} <= set(hp.values)
    assert config.modalities == ("audio", "lyrics")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_build_killed_after_its_first_shard_resumes_to_the_same_files(builds, tmp_path: Path):
    clean = builds[MUSICNN]
    interrupted = tmp_path / "interrupted"
    script = tmp_path / "die.py"
    script.write_text(KILL_AT_SECOND_SHARD)
    killed = subprocess.run(
        [sys.executable, str(script), *clean.arguments, "--out", str(interrupted)],
        capture_output=True,
        cwd=Path(__file__).parents[1],
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not (interrupted / "meta.json").exists()
    assert len(list((interrupted / "_progress").glob("*.tfrecord.json"))) == 1

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*clean.arguments, "--out", str(interrupted)]) == 0
    assert "1 shards kept from an earlier run" in printed.getvalue()
    assert files_of(interrupted) == files_of(clean.out)


def test_a_rerun_with_another_audio_encoder_is_refused_naming_it(builds, capsys):
    build = builds[MUSICNN]
    before = files_of(build.out)
    other = [arg if arg != MUSICNN else "musicnn-mtt" for arg in build.arguments]
    assert main([*other, "--out", str(build.out)]) == 2
    assert "--audio-encoder musicnn-msd -> musicnn-mtt" in capsys.readouterr().err
    assert files_of(build.out) == before


@pytest.fixture(scope="module")
def text_module(tmp_path_factory) -> Path:
    return hub_standins.build_tf2_standin(tmp_path_factory.mktemp("text") / "module")


@pytest.mark.parametrize(
    ("encoder", "options", "messages"),
    [
        ("nosuch", [], ["unknown audio encoder 'nosuch'", MUSICNN, "yamnet", "module folder also works"]),
        ("{tmp}/no-module", [], ["audio encoder module", "no such folder", handles.LOG_MEL_OPTION]),
        ("http://127.0.0.1:9/yamnet", [], ["audio encoder module", "cannot connect", handles.LOG_MEL_OPTION]),
        ("{text}", [], ["--audio-encoder", "no audio signature", "default(text: string"]),
        (MUSICNN, ["--audio-output-key", "nope"], ["musicnn has no output 'nope'", "--audio-output-key"]),
        ("{yamnet}", ["--audio-output-key", "nope"], ["no output 'nope'", "embeddings"]),
        (MUSICNN, ["--sample-rate", "22050"], ["--sample-rate 22050", "16000 Hz", "leave --sample-rate out"]),
        (MUSICNN, ["--clip-seconds", "2"], ["--clip-seconds 2 is shorter than the first patch", "2.976"]),
    ],
)
def test_a_bad_audio_encoder_exits_2_with_one_message(
    shared_manifest_collection, yamnet_like, text_module, tmp_path, capsys, monkeypatch, encoder, options,
    messages,
):
    monkeypatch.setattr(handles, "CONNECT_TIMEOUT_S", 2.0)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    encoder = encoder.format(tmp=tmp_path, text=text_module, yamnet=yamnet_like)
    out = tmp_path / "shards"
    arguments = [*build_arguments(shared_manifest_collection, encoder), *options, "--out", str(out)]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert all(message in error for message in messages), error
    assert "Traceback" not in error
    assert not out.exists()  # a refused build leaves no folder behind


def test_musicnn_not_installed_says_make_install(shared_manifest_collection, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(musicnn.MUSICNN_MODELS, MUSICNN, "MSD_musicnn_missing")  # its checkpoint gone
    out = tmp_path / "shards"
    assert main([*build_arguments(shared_manifest_collection, MUSICNN), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "musicnn's weights are not available" in error and "make install" in error
    assert not out.exists()
