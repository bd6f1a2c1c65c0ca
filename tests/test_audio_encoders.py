"""One seam for every pretrained audio encoder (`genre_fusion.encoders.audio`): musicnn and TF Hub
modules, on stand-ins with YAMNet's, VGGish's and TRILL's interfaces (`tests.audio_standins`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from genre_fusion.encoders import audio, handles
from genre_fusion.encoders.audio import (
    HUB_AUDIO_MODULES,
    MUSICNN_ENCODERS,
    MUSICNN_OUTPUTS,
    OUTPUT_KEY_OPTION,
    load_audio_encoder,
)
from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import ModuleUnavailable, load_module
from genre_fusion.encoders.hub_audio import (
    FROZEN_FOLDER,
    HubAudioEmbedding,
    hub_audio_signature,
    measure_frame_grid,
)
from genre_fusion.encoders.musicnn import load_musicnn
from genre_fusion.encoders.musicnn_embedding import MusicnnEmbedding
from genre_fusion.encoders.musicnn_log_mel import MusicnnLogMelPatches
from genre_fusion.encoders.signatures import is_tf1_module
from tests import audio_standins, hub_standins

RATE = audio_standins.SAMPLE_RATE
SECONDS = 10.0
# float32 dot products of a few thousand terms, summed in another order than numpy's.
ATOL = 1e-4
# The same graph served in another process, or frozen into constants.
SERVED_ATOL = 1e-5
MUSICNN_PATCHES = 3  # 10 s: patches at 0, 2.992 and 5.984 s; the tail dropped
SERVE_TIMEOUT_S = 120

SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    waveforms = tf.constant(np.load(sys.argv[2]))
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            loaded = tf.saved_model.load(path)  # kept: its variables die with it
            results[name] = {"output": loaded.serve(waveforms).numpy().tolist()}
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {err}"}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("audio_standins")
    builders = {
        "yamnet": audio_standins.build_yamnet_like,
        "yamnet_dict": lambda path: audio_standins.build_yamnet_like(path, outputs="dict"),
        "vggish": audio_standins.build_vggish_like,
        "trill": audio_standins.build_trill_like,
        # TRILL v3's key: "samples" sorts after "sample_rate", the placeholder is unnamed.
        "trill_samples": lambda path: audio_standins.build_trill_like(
            path, input_key="samples", placeholder_name=None
        ),
        "text": hub_standins.build_tf2_standin,
    }
    return {name: str(build(root / name)) for name, build in builders.items()}


@pytest.fixture(scope="module")
def waveforms() -> np.ndarray:
    """float32 [2, 10 s]: noise, different per waveform, so a mixed-up batch shows."""
    return np.random.default_rng(7).uniform(-0.5, 0.5, (2, int(SECONDS * RATE))).astype(np.float32)


def _per_waveform(reference):
    """A reference for one waveform [samples] -> one for a batch [batch, samples]."""
    return lambda waveforms: np.stack([reference(waveform) for waveform in waveforms])


# standin, output_key asked, (output_key, width, hop_seconds, first_patch_samples) found, reference
HUB_CASES = {
    "yamnet tuple": (
        "yamnet",
        "output_1",
        ("output_1", audio_standins.YAMNET_WIDTH, 0.48, 15_360),
        _per_waveform(audio_standins.yamnet_like_embeddings),
    ),
    "yamnet dict": (
        "yamnet_dict",
        "",
        ("embeddings", audio_standins.YAMNET_WIDTH, 0.48, 15_360),
        _per_waveform(audio_standins.yamnet_like_embeddings),
    ),
    "vggish": (
        "vggish",
        "",
        ("output_0", audio_standins.VGGISH_WIDTH, 0.96, 1),
        _per_waveform(audio_standins.vggish_like_embeddings),
    ),
    "trill": (
        "trill",
        "",
        ("embedding", audio_standins.TRILL_WIDTH, 0.15, audio_standins.TRILL_FRAME),
        audio_standins.trill_like_embeddings,
    ),
    "trill layer19": (
        "trill_samples",
        "layer19",
        ("layer19", audio_standins.TRILL_LAYER19_WIDTH, 0.15, audio_standins.TRILL_FRAME),
        audio_standins.trill_like_layer19,
    ),
}


@pytest.mark.parametrize("case", sorted(HUB_CASES))
def test_hub_module_spec_and_embeddings(case, standins, waveforms):
    standin, asked, (output_key, width, hop_seconds, first_patch_samples), reference = HUB_CASES[case]
    encoder = load_audio_encoder(standins[standin], asked)
    spec = encoder.spec
    assert (spec.name, spec.sample_rate, spec.output_key, spec.width) == (
        standins[standin],
        RATE,
        output_key,
        width,
    )
    assert spec.hop_seconds == pytest.approx(hop_seconds)
    assert spec.patch_seconds == spec.hop_seconds  # not observable: the hop stands in
    assert spec.first_patch_samples == first_patch_samples
    assert encoder.calls == 0  # probes do not count

    embeddings = encoder.embed(waveforms)
    want = reference(waveforms)
    assert embeddings.dtype == np.float32
    assert embeddings.shape == want.shape == (2, spec.patches(waveforms.shape[1]), width)
    np.testing.assert_allclose(embeddings, want, atol=ATOL)
    assert encoder.calls == 2
    # The grid holds at any length, not only at the probes'.
    lengths = (
        first_patch_samples - 1,
        first_patch_samples,
        first_patch_samples + 1,
        7 * RATE + 123,
        31 * RATE,
    )
    for samples in (n for n in lengths if n > 0):
        assert spec.patches(samples) == reference(np.zeros((1, samples), np.float32)).shape[1], samples


def test_embed_sends_batches_of_batch_size_and_counts_waveforms(standins, waveforms):
    encoder = load_audio_encoder(standins["vggish"], batch_size=2)
    songs = np.concatenate([waveforms, waveforms[::-1], waveforms[:1]])
    np.testing.assert_allclose(
        encoder.embed(songs), _per_waveform(audio_standins.vggish_like_embeddings)(songs), atol=ATOL
    )
    assert encoder.calls == 5
    none = encoder.embed(np.zeros((0, waveforms.shape[1]), np.float32))
    assert none.shape == (0, encoder.spec.patches(waveforms.shape[1]), encoder.spec.width)
    assert encoder.calls == 5
    for wrong in (songs.astype(np.float64), songs[0]):
        with pytest.raises(ValueError, match=r"float32 \[batch, samples\] at 16000 Hz"):
            encoder.embed(wrong)
    with pytest.raises(ValueError, match="batch_size"):
        load_audio_encoder(standins["vggish"], batch_size=0)
    layer = encoder.layer
    assert not layer.trainable and not layer.trainable_weights
    rebuilt = HubAudioEmbedding.from_config(layer.get_config())
    assert (rebuilt.handle, rebuilt.output_key, rebuilt.signature) == (layer.handle, "", layer.signature)


def test_known_patch_length_is_recorded(standins, monkeypatch):
    monkeypatch.setattr(audio, "KNOWN_PATCH_SECONDS", {standins["yamnet"]: 0.96})
    spec = load_audio_encoder(standins["yamnet"], "output_1").spec
    assert (spec.patch_seconds, spec.hop_seconds) == (0.96, pytest.approx(0.48))


@pytest.mark.parametrize(
    "frames, grid",
    [
        # YAMNet's own framing: the waveform padded to one 0.975 s patch, then to whole hops.
        (lambda n: 1 if n <= 15_600 else 1 + -(-(n - 15_600) // 7_680), (7_921, 7_680)),
        # musicnn's: centred frames of 256 samples, patches of 187 frames.
        (lambda n: max(0, (1 + n // 256 - 187) // 187 + 1), (47_616, 47_872)),
        (lambda n: max(0, 1 + (n - 400) // 160), (400, 160)),
    ],
)
def test_frame_grid_is_measured_exactly(frames, grid):
    assert measure_frame_grid(frames, "output") == grid


def test_frame_grid_refuses_pooled_and_irregular_outputs():
    with pytest.raises(ValueError, match="pooled"):
        measure_frame_grid(lambda n: 1, "output")
    with pytest.raises(ValueError, match="no fixed hop"):
        measure_frame_grid(lambda n: int(np.sqrt(n)), "output")


@pytest.mark.e2e
@pytest.mark.parametrize("standin, input_key", [("trill", "audio"), ("trill_samples", "samples")])
def test_freezing_an_audio_module_keeps_both_inputs(standin, input_key, standins, waveforms, tmp_path):
    frozen = str(freeze_module(standins[standin], tmp_path / "frozen", check=hub_audio_signature))
    assert not is_tf1_module(frozen)
    original, copy = (load_module(path).signatures["default"] for path in (standins[standin], frozen))
    assert copy.structured_input_signature == original.structured_input_signature
    inputs = {input_key: tf.constant(waveforms), "sample_rate": tf.constant(RATE)}
    want, got = original(**inputs), copy(**inputs)
    assert sorted(got) == sorted(want) == ["embedding", "layer19"]
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=SERVED_ATOL, err_msg=key)
    half_rate = copy(**{**inputs, "sample_rate": tf.constant(RATE // 2)})["embedding"]
    np.testing.assert_allclose(half_rate.numpy(), want["embedding"].numpy() / 2, atol=SERVED_ATOL)
    # The default check is the text one, with its own message.
    with pytest.raises(ValueError, match="must take exactly one string tensor"):
        freeze_module(standins[standin], tmp_path / "as_text")


def _save(layer: keras.layers.Layer, path: str) -> None:
    """What the export does: the layer in a tf.Module with a serving function, as a SavedModel."""
    holder = tf.Module()
    holder.layer = layer
    holder.serve = tf.function(
        lambda waveforms: layer(waveforms), input_signature=[tf.TensorSpec([None, None], tf.float32)]
    )
    tf.saved_model.save(holder, path)


@pytest.fixture(scope="module")
def served(standins, waveforms, tmp_path_factory):
    """Each encoder's export layer saved in a tf.Module (the TF1 stand-in's also unfrozen), every
    module folder and workdir deleted, then served in a fresh process.
    Returns (embed's embeddings, export layers, served outputs or errors), by encoder."""
    root = tmp_path_factory.mktemp("audio_exports")
    modules = {name: shutil.copytree(standins[name], root / f"{name}_module") for name in ("yamnet", "trill")}
    encoders = {
        "yamnet": load_audio_encoder(str(modules["yamnet"]), "output_1"),
        "trill": load_audio_encoder(str(modules["trill"])),
        "musicnn": load_audio_encoder("musicnn-msd"),
    }
    layers = {name: encoder.export_layer(root / f"{name}_work") for name, encoder in encoders.items()}
    layers["trill unfrozen"] = encoders["trill"].layer
    embedded = {name: encoder.embed(waveforms) for name, encoder in encoders.items()}
    exports = {name: str(root / f"export_{index}") for index, name in enumerate(layers)}
    for name, layer in layers.items():
        _save(layer, exports[name])
    for folder in (*modules.values(), *(root / f"{name}_work" for name in encoders)):
        shutil.rmtree(folder, ignore_errors=True)
    np.save(root / "waveforms.npy", waveforms)
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, json.dumps(exports), str(root / "waveforms.npy")],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=SERVE_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return embedded, layers, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["yamnet", "trill", "musicnn"])
def test_export_layer_serves_the_same_embeddings_without_its_module(name, served):
    embedded, layers, outputs = served
    assert "output" in outputs[name], outputs[name]
    np.testing.assert_allclose(np.array(outputs[name]["output"]), embedded[name], atol=SERVED_ATOL)
    assert layers[name].compute_output_shape((None, None))[-1] == embedded[name].shape[-1]


@pytest.mark.e2e
def test_tf1_module_is_served_frozen_and_fails_unfrozen(served):
    _, layers, outputs = served
    assert FROZEN_FOLDER in layers["trill"].handle
    assert "uninitialized value" in outputs["trill unfrozen"].get("error", ""), outputs["trill unfrozen"]


# --- musicnn ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def musicnn_outputs(waveforms) -> dict[str, np.ndarray]:
    outputs = load_musicnn("musicnn-msd")(tf.constant(waveforms[:1]), training=False)
    outputs = {key: value.numpy() for key, value in outputs.items()}
    return {**outputs, "pooled": np.concatenate([outputs["mean_pool"], outputs["max_pool"]], axis=-1)}


@pytest.mark.parametrize("output_key, width", zip(MUSICNN_OUTPUTS, (200, 753, 753, 1506), strict=True))
def test_musicnn_embed_equals_load_musicnn(output_key, width, musicnn_outputs, waveforms):
    encoder = load_audio_encoder("musicnn-msd", output_key)
    assert (encoder.spec.output_key, encoder.spec.width) == (output_key, width)
    embeddings = encoder.embed(waveforms[:1])
    want = musicnn_outputs[output_key]
    assert embeddings.shape == want.shape == (1, MUSICNN_PATCHES, width)
    np.testing.assert_allclose(embeddings, want, atol=1e-5 * np.abs(want).max())
    assert encoder.calls == 1


def test_musicnn_spec_is_frozen_and_in_inference_mode(waveforms):
    encoder = load_audio_encoder(MUSICNN_ENCODERS[1])
    spec = encoder.spec
    assert (spec.name, spec.sample_rate, spec.output_key, spec.width) == (
        "musicnn-mtt",
        16_000,
        "max_pool",
        753,
    )
    assert spec.patch_seconds == spec.hop_seconds == pytest.approx(187 * 256 / 16_000)
    assert spec.patches(waveforms.shape[1]) == MUSICNN_PATCHES
    log_mel = MusicnnLogMelPatches()
    for samples in [*range(spec.first_patch_samples - 300, spec.first_patch_samples + 300, 37), 10**6]:
        assert spec.patches(samples) == log_mel.compute_output_shape((1, samples))[1], samples
    layer = encoder.layer
    assert not layer.trainable and not layer.trainable_weights and layer.non_trainable_weights
    batch = tf.constant(waveforms[:1])
    np.testing.assert_array_equal(layer(batch, training=True).numpy(), layer(batch).numpy())  # no dropout
    rebuilt = MusicnnEmbedding.from_config(layer.get_config())
    assert (rebuilt.encoder, rebuilt.output_key) == ("musicnn-mtt", "max_pool")


# --- what is refused -------------------------------------------------------------------------


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError) as refused:
        load_audio_encoder("musicnn-xyz")
    message = str(refused.value)
    assert all(name in message for name in (*MUSICNN_ENCODERS, *HUB_AUDIO_MODULES)), message
    assert "handle" in message and "folder" in message
    with pytest.raises(ValueError, match="no pretrained encoder"):
        load_audio_encoder("log-mel")


def test_missing_folder_and_unreachable_handle(tmp_path, monkeypatch):
    with pytest.raises(ModuleUnavailable, match="no such folder"):
        load_audio_encoder(str(tmp_path / "missing"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(handles, "CONNECT_TIMEOUT_S", 1.0)
    start = time.monotonic()
    with pytest.raises(ModuleUnavailable, match=HUB_AUDIO_MODULES["yamnet"]):
        load_audio_encoder("yamnet")
    assert time.monotonic() - start < 10


def test_module_without_an_audio_signature_lists_its_signatures(standins):
    with pytest.raises(ValueError, match=r"no audio signature.*default\(text: string \[None\]\)"):
        load_audio_encoder(standins["text"])


def test_output_keys_that_do_not_exist_or_cannot_be_told(standins):
    with pytest.raises(ValueError, match="no output 'embeddings'.*output_0.*output_1.*output_2"):
        load_audio_encoder(standins["yamnet"], "embeddings")
    with pytest.raises(ValueError, match=f"cannot tell.*output_0.*output_1.*output_2.*{OUTPUT_KEY_OPTION}"):
        load_audio_encoder(standins["yamnet"])
    with pytest.raises(ValueError, match="musicnn has no output 'taggram'.*" + ".*".join(MUSICNN_OUTPUTS)):
        load_audio_encoder("musicnn-msd", "taggram")
