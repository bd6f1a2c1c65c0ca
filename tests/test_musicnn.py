"""The Keras 3 musicnn equals musicnn 0.1.0 itself, run on the same waveform in a subprocess.

musicnn's code is TF1 (its extractor disables eager execution for the whole process), so it runs
in a child process on tf_keras (TF_USE_LEGACY_KERAS=1): the log-mel patches from its own
`extractor.batch_data` (librosa), and its `models.py` graph restored from the checkpoint in a
tf.compat.v1 session as `extractor.extractor()` builds and restores it, every output fetched for
every patch. `extractor.extractor()` runs too: its taggram equals the reference's, and its
penultimate features repeat the first patch's (musicnn 0.1.0's bug: for the later patches it
unpacks the new value into `backend_` and concatenates the first patch's `penultimate_`).

Tolerances, all float32:

- log-mel patches: both sides round to float16 where the extractor's numpy does, so most values
  are identical; a float32 difference of the FFT (numpy's float64 FFT vs TF's float32) that
  crosses a rounding boundary moves a value by one float16 step (2**-8 for values in [4, 8)).
- outputs, per output, as max |port - original| / max |original|: float32 rounding. Run in
  float64, this port and the original each differ from the float64 result by up to ~3e-6 of that
  scale (the mid end's residual sums: ~1e-4 in a max_pool of ~38), and from each other by as
  much on the same patches (tolerance 3e-5); from the waveform on, with the input's few float16
  steps, by up to ~1.4e-5 (tolerance 1e-4). A log-mel computed in float32 without the float16
  rounding would differ by 1.6e-4 to 1.6e-3 there, a batch norm epsilon of 1e-5 by ~0.2-0.45.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from genre_fusion.encoders.handles import ModuleUnavailable
from genre_fusion.encoders.musicnn import (
    MUSICNN_MODELS,
    OUTPUTS,
    Musicnn,
    load_musicnn,
    load_musicnn_weights,
    musicnn_checkpoint,
)
from genre_fusion.encoders.musicnn_log_mel import (
    PATCH_FRAMES,
    SAMPLE_RATE,
    MusicnnLogMelPatches,
    slaney_mel_filterbank,
)

SECONDS = 10.0
PATCHES = 3  # 626 frames: patches at 0, 187 and 374; the last 65 frames dropped
FLOAT16_STEP = 2.0**-8  # float16's spacing in [4, 8): the largest for a log-mel value (< 6.1 here)
# max |port - original| / max |original|, per output
NETWORK_TOLERANCE = 3e-5
END_TO_END_TOLERANCE = 1e-4
DISTINCT_PATCHES = 0.1  # penultimate rows of different patches differ by more than this (~1-2 here)
REFERENCE_TIMEOUT_S = 300

REFERENCE_SCRIPT = r"""
import os, sys
import librosa
import numpy as np
import tensorflow as tf
from musicnn import configuration as config, extractor, models

wav, out = sys.argv[1], sys.argv[2]
# extractor.extractor(input_length=3, input_overlap=False): patches of n_frames, hop n_frames.
n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
patches, _ = extractor.batch_data(wav, n_frames, n_frames)
results = {"patches": patches}
for model in sys.argv[3:]:
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, *_, mean_pool, max_pool, penultimate = models.define_model(
            x, is_training, model, len(config.MSD_LABELS if "MSD" in model else config.MTT_LABELS)
        )
        taggram = tf.nn.sigmoid(logits)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(models.__file__) + "/" + model + "/")
        rows = [
            sess.run([taggram, penultimate, mean_pool, max_pool], {x: patch[None], is_training: False})
            for patch in patches
        ]
    for name, values in zip(("taggram", "penultimate", "mean_pool", "max_pool"), zip(*rows)):
        results[f"{model}.{name}"] = np.concatenate(values)
    taggram_, _, features = extractor.extractor(wav, model=model)
    results[f"{model}.extractor_taggram"] = taggram_
    results[f"{model}.extractor_penultimate"] = features["penultimate"]
np.savez(out, **results)
"""


def _waveform() -> np.ndarray:
    """10 s at 16 kHz: two tones, a chirp and noise, quiet enough for the extractor's float16."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(7)
    signal = 0.04 * np.sin(2 * np.pi * 110 * t) + 0.03 * np.sin(2 * np.pi * 1250 * t) * (t % 1.0)
    signal += 0.02 * np.sin(2 * np.pi * (300 + 200 * t) * t) + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


@pytest.fixture(scope="module")
def waveform() -> np.ndarray:
    return _waveform()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, waveform) -> dict[str, np.ndarray]:
    """The original's outputs on `waveform`, both models in one child process."""
    folder = tmp_path_factory.mktemp("musicnn_reference")
    wav, out = folder / "waveform.wav", folder / "reference.npz"
    sf.write(wav, waveform, SAMPLE_RATE, subtype="FLOAT")  # librosa.load reads it back bit for bit
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(wav), str(out), *MUSICNN_MODELS.values()],
        env=env,
        capture_output=True,
        text=True,
        timeout=REFERENCE_TIMEOUT_S,
    )
    assert result.returncode == 0, f"the original musicnn failed:\n{result.stderr[-4000:]}"
    with np.load(out) as data:
        return dict(data)


@pytest.fixture(scope="module")
def ports() -> dict[str, keras.Model]:
    return {name: load_musicnn(name) for name in MUSICNN_MODELS}


def _numpy(outputs) -> dict[str, np.ndarray]:
    return {key: keras.ops.convert_to_numpy(value)[0] for key, value in outputs.items()}


def _assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float, label: str) -> None:
    assert actual.shape == expected.shape, label
    scale = np.abs(expected).max()
    difference = np.abs(actual - expected).max()
    assert difference <= tolerance * scale, f"{label}: max |difference| {difference:.3g} of max {scale:.3g}"


def test_the_filterbank_is_librosas():
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=96).T
    np.testing.assert_allclose(slaney_mel_filterbank(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.e2e
def test_log_mel_patches_equal_the_extractors_batch_data(reference, waveform):
    patches = keras.ops.convert_to_numpy(MusicnnLogMelPatches()(waveform[None]))[0]

    expected = reference["patches"].astype(np.float32)
    assert np.isfinite(expected).all()  # the waveform is quiet enough for the extractor's float16
    assert patches.shape == expected.shape == (PATCHES, PATCH_FRAMES, 96)
    difference = np.abs(patches - expected)
    assert difference.max() <= FLOAT16_STEP
    assert np.mean(difference > 0) < 1e-3  # one float16 step, in a few values only


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(MUSICNN_MODELS))
def test_the_network_equals_the_original_on_its_patches(name, reference, ports):
    network = ports[name].get_layer("musicnn")
    outputs = _numpy(network(reference["patches"].astype(np.float32)[None]))

    model = MUSICNN_MODELS[name]
    for key in OUTPUTS:
        _assert_close(outputs[key], reference[f"{model}.{key}"], NETWORK_TOLERANCE, f"{name} {key}")


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(MUSICNN_MODELS))
def test_waveform_to_outputs_equals_the_original(name, reference, ports, waveform):
    outputs = _numpy(ports[name](waveform[None]))

    model = MUSICNN_MODELS[name]
    # The reference is the extractor's own computation, only per patch in full.
    np.testing.assert_array_equal(reference[f"{model}.extractor_taggram"], reference[f"{model}.taggram"])
    for key in OUTPUTS:
        _assert_close(outputs[key], reference[f"{model}.{key}"], END_TO_END_TOLERANCE, f"{name} {key}")


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(MUSICNN_MODELS))
def test_penultimate_features_are_per_patch_unlike_the_extractors(name, reference, ports, waveform):
    model = MUSICNN_MODELS[name]
    buggy, correct = reference[f"{model}.extractor_penultimate"], reference[f"{model}.penultimate"]
    penultimate = _numpy(ports[name](waveform[None]))["penultimate"]

    assert all(np.array_equal(row, buggy[0]) for row in buggy)  # the extractor repeats patch 0
    np.testing.assert_array_equal(buggy[0], correct[0])
    _assert_close(penultimate, correct, END_TO_END_TOLERANCE, f"{name} penultimate")
    for later in range(1, PATCHES):
        assert np.abs(correct[later] - correct[0]).max() > DISTINCT_PATCHES
        assert np.abs(penultimate[later] - buggy[later]).max() > DISTINCT_PATCHES


def test_the_port_never_imports_musicnn(ports):
    assert ports and "musicnn" not in sys.modules


def test_loud_input_stays_finite_where_the_extractors_float16_overflows():
    librosa = pytest.importorskip("librosa")
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    loud = (0.5 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=loud, sr=SAMPLE_RATE, hop_length=256, n_fft=512, n_mels=96).T
    with np.errstate(over="ignore"):
        assert np.isinf(np.log10(10_000 * mel.astype(np.float16) + 1)).any()

    patches = keras.ops.convert_to_numpy(MusicnnLogMelPatches()(loud[None]))[0, 0]

    assert np.isfinite(patches).all()
    np.testing.assert_allclose(patches, np.log10(10_000 * mel[:PATCH_FRAMES] + 1), atol=FLOAT16_STEP)


def test_shapes_configs_and_a_clip_shorter_than_a_patch():
    layer = MusicnnLogMelPatches(patch_hop=100)
    network = Musicnn(classes=7, midend_filters=8, backend_units=16)
    for restored, original in ((MusicnnLogMelPatches, layer), (Musicnn, network)):
        assert restored.from_config(original.get_config()).get_config() == original.get_config()

    patches = layer(np.zeros((2, 4 * SAMPLE_RATE), np.float32))  # 251 frames: patches at 0 and 100
    outputs = network(patches)
    short = layer(np.zeros((1, 2 * SAMPLE_RATE), np.float32))

    assert tuple(patches.shape) == layer.compute_output_shape((2, 4 * SAMPLE_RATE)) == (2, 1, 187, 96)
    assert {key: tuple(value.shape) for key, value in outputs.items()} == {
        "taggram": (2, 1, 7), "penultimate": (2, 1, 16), "mean_pool": (2, 1, 585), "max_pool": (2, 1, 585)
    }
    assert tuple(short.shape) == (1, 0, 187, 96)


def _write_checkpoint(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    """A TF1-style checkpoint (variables saved under plain names), without a TF1 graph."""
    names = sorted(tensors)
    values = [tensors[name] for name in names]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values)


def test_a_checkpoint_that_does_not_match_names_its_variables(tmp_path: Path):
    reader = tf.compat.v1.train.NewCheckpointReader(musicnn_checkpoint("musicnn-msd"))
    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    del tensors["conv2d_6/bias"]
    tensors["dense_1/bias"] = np.zeros(10, np.float32)
    tensors["dense_2/kernel"] = np.zeros((3, 3), np.float32)
    _write_checkpoint(str(tmp_path / "model"), tensors)
    network = Musicnn()
    network.build((None, None, PATCH_FRAMES, 96))

    with pytest.raises(ValueError) as error:
        load_musicnn_weights(network, str(tmp_path / "model"))

    message = str(error.value)
    assert "missing: conv2d_6/bias" in message
    assert "unexpected: dense_2/kernel" in message
    assert "other shape: dense_1/bias [10] (expected [50])" in message
    assert "Adam" not in message and "beta1_power" not in message  # optimizer state is not a mismatch


def test_an_unknown_name_lists_the_known_ones():
    known = "known: musicnn-msd, musicnn-mtt"
    with pytest.raises(ValueError, match=f"unknown musicnn model 'musicnn-big'; {known}"):
        load_musicnn("musicnn-big")


def test_without_the_package_the_error_says_how_to_install(monkeypatch):
    find_spec = importlib.util.find_spec

    def without_musicnn(name, *args):
        return None if name == "musicnn" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_musicnn)

    with pytest.raises(ModuleUnavailable, match=r"make install.*pip install --no-deps musicnn==0\.1\.0"):
        load_musicnn("musicnn-mtt")
