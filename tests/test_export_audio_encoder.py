"""Export and serving with a pretrained audio encoder: musicnn-msd (its real weights), a TF1
TRILL-like and a TF2 YAMNet-like TF Hub stand-in (`tests.audio_standins`).

Per encoder, once (`exports`): songs of synthetic tones embedded by `AudioEncoder.embed` and written
as shards directly (as `tests/test_audio_embeddings.py` does: no build), a one-epoch run of a tiny
audio-only model, its export; then the stand-ins' module folders are deleted and every export is
served in a fresh process that imports TensorFlow and NumPy only. What the export serves must be
the in-memory Keras path: `AudioEncoder.embed` on the waveform fitted to the clip, then the run's
model, told the valid patches as the build counts them (the patches within the song's real audio,
1 to the clip's).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_fusion.data.inputs import AUDIO_EMBEDDINGS_INPUT, AUDIO_PATCHES_INPUT
from genre_fusion.data.schema import SongRecord
from genre_fusion.encoders.audio import AudioEncoder, load_audio_encoder
from genre_fusion.features.audio import decode_audio
from genre_fusion.features.config import FeatureConfig
from genre_fusion.runs.loading import load_run
from genre_fusion.serving import export, predict
from genre_fusion.serving.layout import FEATURES_FILE, README_FILE, SIGNATURE_FILE
from genre_fusion.training.cli import main as train_main
from tests import audio_standins

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.shard_writing"]

RATE = audio_standins.SAMPLE_RATE
WAV_RATE = 22_050  # predict resamples it to the export's RATE
CLIP_SECONDS = 6.5  # two musicnn patches
GENRES = ("ambient", "punk", "soul")
SONGS = {"train": 12, "val": 3, "test": 3}
TINY_MODEL = {"dense_units": 8, "dropout": 0.1, "learning_rate": 0.01}
TRAIN_FLAGS = ["--epochs", "1", "--batch-size", "6", "--modalities", "audio"]
# The same graph served in another process (measured: bit for bit on CPU); room for other kernels.
SERVED_ATOL = 1e-6
SERVE_TIMEOUT_S = 120
# Songs served in one batch, zero-padded to the longest: longer than the clip (cut), shorter than
# it (its padding's patches are not valid), shorter than any encoder's first patch (1 patch).
SERVED_SECONDS = [CLIP_SECONDS + 1.0, 0.6 * CLIP_SECONDS, 0.3]
# name -> (encoder name or stand-in builder, output key)
ENCODERS = {
    "musicnn": ("musicnn-msd", ""),
    "trill": (audio_standins.build_trill_like, ""),
    "yamnet": (audio_standins.build_yamnet_like, "output_1"),
}

SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    waveforms = tf.constant(np.load(sys.argv[2]))
    lyrics = tf.constant([""] * len(waveforms))
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        signatures = tf.saved_model.load(path).signatures
        served = signatures["serving_default"](waveform=waveforms, lyrics=lyrics)
        features = signatures["features"](waveform=waveforms, lyrics=lyrics)
        results[name] = {
            "probabilities": served["probabilities"].numpy().tolist(),
            "features": {key: value.numpy().tolist() for key, value in features.items()},
        }
    print(json.dumps(results))
    """
)


@dataclass
class Export:
    encoder: AudioEncoder
    features: FeatureConfig
    run: Path
    model: Path


def _tone(rng: np.random.Generator, genre: int, seconds: float, rate: int = RATE) -> np.ndarray:
    """A tone near the genre's pitch in noise, both of random level, float32 [samples] at `rate`."""
    t = np.arange(round(seconds * rate)) / rate
    pitch = 220.0 * (genre + 1) * rng.uniform(0.8, 1.25)
    tone = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * pitch * t) + rng.normal(
        0, rng.uniform(0.01, 0.2), len(t)
    )
    return tone.astype(np.float32)


def _write_shards(folder: Path, encoder: AudioEncoder, features: FeatureConfig, write_record_shards) -> None:
    """Shards of `SONGS` songs of full clips, embedded by `encoder`, with meta.json and statistics."""
    rng = np.random.default_rng(0)
    songs = {}
    for split, count in SONGS.items():
        labels = [index % len(GENRES) for index in range(count)]
        waveforms = np.stack([_tone(rng, genre, CLIP_SECONDS) for genre in labels])
        embeddings = encoder.embed(waveforms)
        assert embeddings.shape == (count, features.audio_patches, features.audio_embedding_width)
        songs[split] = [
            SongRecord(
                f"{split}{i}", f"artist{i}", None, CLIP_SECONDS, "", (genre,), audio_embeddings=vectors
            )
            for i, (genre, vectors) in enumerate(zip(labels, embeddings, strict=True))
        ]
    write_record_shards(folder, songs, GENRES, features)


def _fitted(features: FeatureConfig, waveforms: np.ndarray) -> np.ndarray:
    """Waveforms [batch, samples] cut or zero-padded to the clip, as the serving graph fits them."""
    fitted = np.zeros((len(waveforms), features.clip_samples), np.float32)
    kept = waveforms[:, : features.clip_samples]
    fitted[:, : kept.shape[1]] = kept
    return fitted


def build_patches(item: Export, seconds: list[float]) -> np.ndarray:
    """Valid patches per song of `seconds` of real audio, as `data_prep build` keeps them."""
    spec, features = item.encoder.spec, item.features
    counts = [spec.patches(min(round(s * RATE), features.clip_samples)) for s in seconds]
    return np.clip(counts, 1, features.audio_patches).astype(np.int32)


def keras_probabilities(item: Export, waveforms: np.ndarray, seconds: list[float]) -> np.ndarray:
    """The in-memory path: the encoder's `embed` on the waveforms fitted to the clip, then the run's
    model, with the valid patches of songs of `seconds` of real audio."""
    patches = build_patches(item, seconds)
    embeddings = item.encoder.embed(_fitted(item.features, waveforms))
    _, model = load_run(item.run)
    return model({AUDIO_EMBEDDINGS_INPUT: embeddings, AUDIO_PATCHES_INPUT: patches}, training=False).numpy()


@pytest.fixture(scope="module")
def exports(tmp_path_factory, write_record_shards) -> dict[str, Export]:
    root = tmp_path_factory.mktemp("audio_encoder_exports")
    hparams = root / "hparams.json"
    hparams.write_text(json.dumps(TINY_MODEL))
    made = {}
    for name, (source, output_key) in ENCODERS.items():
        handle = source if isinstance(source, str) else str(source(root / f"{name}_module"))
        encoder = load_audio_encoder(handle, output_key)
        features = FeatureConfig(clip_seconds=CLIP_SECONDS, max_tokens=8).with_audio_encoder(encoder.spec)
        shards, run, model = (root / f"{kind}_{name}" for kind in ("shards", "run", "model"))
        _write_shards(shards, encoder, features, write_record_shards)
        flags = ["--data", str(shards), "--run", str(run), "--hparams", str(hparams), *TRAIN_FLAGS]
        assert train_main(flags) == 0
        assert export.main(["--run", str(run), "--out", str(model), "--top-k", str(len(GENRES))]) == 0
        made[name] = Export(encoder, features, run, model)
    return made


@pytest.fixture(scope="module")
def waveforms() -> np.ndarray:
    """The songs of SERVED_SECONDS at RATE, zero-padded to the longest."""
    rng = np.random.default_rng(1)
    batch = np.zeros((len(SERVED_SECONDS), round(max(SERVED_SECONDS) * RATE)), np.float32)
    for row, seconds in zip(batch, SERVED_SECONDS, strict=True):
        tone = _tone(rng, 1, seconds)
        row[: len(tone)] = tone
    return batch


@pytest.fixture(scope="module")
def served(exports, waveforms, tmp_path_factory) -> dict[str, dict]:
    """Every export served in a fresh process, the stand-ins' module folders deleted first."""
    for item in exports.values():
        if Path(item.features.audio_encoder).is_dir():
            shutil.rmtree(item.features.audio_encoder)
    path = tmp_path_factory.mktemp("served") / "waveforms.npy"
    np.save(path, waveforms)
    models = json.dumps({name: str(item.model) for name, item in exports.items()})
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, models, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=SERVE_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ENCODERS)
def test_export_serves_the_keras_path_without_the_module(name, exports, served, waveforms):
    item, outputs = exports[name], served[name]
    features = item.features
    want = keras_probabilities(item, waveforms, SERVED_SECONDS)
    np.testing.assert_allclose(np.array(outputs["probabilities"]), want, atol=SERVED_ATOL)
    served_features = outputs["features"]
    assert sorted(served_features) == [AUDIO_EMBEDDINGS_INPUT, AUDIO_PATCHES_INPUT]
    patches = served_features[AUDIO_PATCHES_INPUT]
    assert patches == build_patches(item, SERVED_SECONDS).tolist()
    assert patches[0] == features.audio_patches and patches[-1] == 1
    # The embeddings too: a saturated softmax would hide a difference in them.
    embedded = item.encoder.embed(_fitted(features, waveforms))
    np.testing.assert_allclose(np.array(served_features[AUDIO_EMBEDDINGS_INPUT]), embedded, atol=SERVED_ATOL)


@pytest.mark.parametrize("name", ENCODERS)
def test_export_files_describe_the_encoder(name, exports):
    item = exports[name]
    features, folder = item.features, item.model
    assert json.loads((folder / FEATURES_FILE).read_text())["sample_rate"] == RATE
    signatures = json.loads((folder / SIGNATURE_FILE).read_text())["signatures"]
    embeddings = {"dtype": "float32", "shape": [None, features.audio_patches, features.audio_embedding_width]}
    patches = {"dtype": "int32", "shape": [None]}
    model_inputs = {AUDIO_EMBEDDINGS_INPUT: embeddings, AUDIO_PATCHES_INPUT: patches}
    assert signatures["features"]["outputs"] == model_inputs
    assert signatures["classify"]["inputs"] == model_inputs
    assert signatures["serving_default"]["inputs"]["waveform"] == {"dtype": "float32", "shape": [None, None]}
    readme = (folder / README_FILE).read_text()
    assert f"mono at {RATE} Hz" in readme and features.audio_encoder in readme
    assert f"1 to {features.audio_patches}" in readme


@pytest.mark.parametrize("name", ENCODERS)
def test_predict_decodes_at_the_encoders_rate(name, exports, served, tmp_path, capsys):
    item = exports[name]
    song = tmp_path / "song.wav"
    # Shorter than the clip: predict pads it with zeros, which the export counts as no audio.
    sf.write(song, _tone(np.random.default_rng(2), 0, 0.7 * CLIP_SECONDS, WAV_RATE), WAV_RATE)
    assert predict.main(["--model", str(item.model), "--json", "--top-k", str(len(GENRES)), str(song)]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    ranked = {entry["genre"]: entry["probability"] for entry in json.loads(line)["genres"]}
    decoded = decode_audio(song, RATE, CLIP_SECONDS)
    want = keras_probabilities(item, decoded.waveform[None], [decoded.seconds])[0]
    np.testing.assert_allclose([ranked[genre] for genre in GENRES], want, atol=SERVED_ATOL)


@pytest.mark.parametrize("name", ENCODERS)
def test_export_without_the_encoder_stops_with_the_way_forward(
    name, exports, served, tmp_path, monkeypatch, capsys
):
    item = exports[name]
    if name == "musicnn":
        find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda module, *args: None if module == "musicnn" else find_spec(module, *args),
        )
        fix = "make install"
    else:
        fix = "TFHUB_CACHE_DIR"  # the module folder is gone (`served`)
    assert export.main(["--run", str(item.run), "--out", str(tmp_path / "model")]) == 2
    message = capsys.readouterr().err
    assert f"audio encoder {item.features.audio_encoder!r} cannot be loaded" in message and fix in message
    assert not (tmp_path / "model").exists()
