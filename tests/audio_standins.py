"""Tiny local stand-ins for TF Hub audio modules (YAMNet, VGGish, TRILL), for tests.

No TF Hub download works offline, so the tests build modules with each documented interface and
load them through the same code path as the real ones (`tensorflow_hub.load` on a local folder).
Each varies what `genre_fusion.encoders.audio` must read rather than assume:

- `build_yamnet_like(directory)`: a TF2 SavedModel whose ``serving_default`` takes a 1-D float32
  ``waveform`` and returns 3 outputs, the embeddings second: ``scores`` [frames, 5],
  ``embeddings`` [frames, YAMNET_WIDTH] and a log-mel-like [spectrogram frames, 8] at another
  frame rate. Frames of 0.96 s every 0.48 s from sample 0, no padding (`tf.signal.frame`).
  `outputs="tuple"` returns them as a tuple (signature keys ``output_0`` .. ``output_2``, as
  YAMNet's published module), `outputs="dict"` by name (as YAMNet's current export script).
- `build_vggish_like(directory)`: a TF2 SavedModel whose ``default`` signature takes a 1-D
  float32 ``samples`` and returns one output ([frames, VGGISH_WIDTH], key ``output_0``): frames
  of 0.96 s every 0.96 s, the last one zero-padded (``pad_end``).
- `build_trill_like(directory)`: a TF1 Hub format module (reference variables, ``VariableV2``,
  which fail when served unless frozen) whose ``default`` signature takes a batched float32
  [batch, samples] (key `input_key`, ``audio`` by default) and an int32 scalar ``sample_rate``,
  and returns ``embedding`` [batch, frames, TRILL_WIDTH] and ``layer19`` [batch, frames,
  TRILL_LAYER19_WIDTH]: frames of 0.4 s every 0.15 s, no padding. The embedding is scaled by
  sample_rate / 16000, so a module fed another rate gives other values.

Each embedding is a linear or RMS function of its frames; `yamnet_like_embeddings`,
`vggish_like_embeddings`, `trill_like_embeddings` and `trill_like_layer19` compute the expected
values in numpy, framing the waveform independently of the graph. Weights come from seeded
generators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tests.hub_standins import TF1_HUB_MARKER, TF1_HUB_MARKER_BYTES, _signature_def

SAMPLE_RATE = 16_000
SEED = 1602

YAMNET_FRAME = 15_360  # 0.96 s
YAMNET_HOP = 7_680  # 0.48 s
YAMNET_WIDTH = 24
YAMNET_CLASSES = 5
YAMNET_SPECTROGRAM_FRAME = 400
YAMNET_SPECTROGRAM_HOP = 160
YAMNET_MEL_BINS = 8

VGGISH_FRAME = 15_360  # 0.96 s, also the hop
VGGISH_WIDTH = 16

TRILL_FRAME = 6_400  # 0.4 s
TRILL_HOP = 2_400  # 0.15 s
TRILL_WIDTH = 12
TRILL_LAYER19_WIDTH = 20
TRILL_INPUT = "audio"
TRILL_SAMPLE_RATE_INPUT = "sample_rate"


def _weights(name: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng([SEED, *name.encode()])
    return (rng.normal(0.0, 1.0, shape) / np.sqrt(shape[0])).astype(np.float32)


def _frames(waveforms: np.ndarray, length: int, hop: int, pad_end: bool = False) -> np.ndarray:
    """float32 [..., samples] -> [..., frames, length], frame i from sample i * hop."""
    samples = waveforms.shape[-1]
    if pad_end:
        count = -(-samples // hop)
        padding = max(0, (count - 1) * hop + length - samples)
        waveforms = np.pad(waveforms, [(0, 0)] * (waveforms.ndim - 1) + [(0, padding)])
    else:
        count = max(0, (samples - length) // hop + 1)
    starts = np.arange(count) * hop
    return waveforms[..., starts[:, None] + np.arange(length)[None, :]]


# --- YAMNet-like -----------------------------------------------------------------------------


def yamnet_like_embeddings(waveform: np.ndarray) -> np.ndarray:
    """float32 [samples] -> [frames, YAMNET_WIDTH], what the YAMNet-like module's embeddings hold."""
    return _frames(waveform, YAMNET_FRAME, YAMNET_HOP) @ _weights("yamnet", (YAMNET_FRAME, YAMNET_WIDTH))


class _YamnetLike(tf.Module):
    def __init__(self, outputs: str):
        super().__init__()
        self.outputs = outputs
        self.projection = tf.Variable(_weights("yamnet", (YAMNET_FRAME, YAMNET_WIDTH)))
        self.classifier = tf.Variable(_weights("yamnet_classes", (YAMNET_WIDTH, YAMNET_CLASSES)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def __call__(self, waveform):
        embeddings = tf.matmul(tf.signal.frame(waveform, YAMNET_FRAME, YAMNET_HOP), self.projection)
        scores = tf.sigmoid(tf.matmul(embeddings, self.classifier))
        spectrogram_frames = tf.signal.frame(waveform, YAMNET_SPECTROGRAM_FRAME, YAMNET_SPECTROGRAM_HOP)
        bands = tf.reshape(
            spectrogram_frames, [-1, YAMNET_MEL_BINS, YAMNET_SPECTROGRAM_FRAME // YAMNET_MEL_BINS]
        )
        log_mel = tf.math.log(tf.reduce_mean(tf.square(bands), axis=-1) + 1e-3)
        if self.outputs == "tuple":
            return scores, embeddings, log_mel
        return {"predictions": scores, "embeddings": embeddings, "log_mel_spectrogram": log_mel}


def build_yamnet_like(directory: str | Path, outputs: str = "tuple") -> Path:
    """Write the YAMNet-like TF2 SavedModel (``serving_default``); `outputs`: "tuple" or "dict"."""
    if outputs not in ("tuple", "dict"):
        raise ValueError(f"outputs must be 'tuple' or 'dict', got {outputs!r}")
    module = _YamnetLike(outputs)
    tf.saved_model.save(module, str(directory), signatures=module.__call__.get_concrete_function())
    return Path(directory)


# --- VGGish-like -----------------------------------------------------------------------------


def _vggish_scale() -> np.ndarray:
    return np.linspace(0.5, 2.0, VGGISH_WIDTH, dtype=np.float32)


def vggish_like_embeddings(waveform: np.ndarray) -> np.ndarray:
    """float32 [samples] -> [frames, VGGISH_WIDTH]: each frame's RMS in VGGISH_WIDTH equal slices,
    scaled."""
    frames = _frames(waveform, VGGISH_FRAME, VGGISH_FRAME, pad_end=True)
    slices = frames.reshape(*frames.shape[:-1], VGGISH_WIDTH, VGGISH_FRAME // VGGISH_WIDTH)
    return np.sqrt(np.mean(np.square(slices), axis=-1)) * _vggish_scale()


class _VggishLike(tf.Module):
    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(_vggish_scale())

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="samples")])
    def embed(self, samples):
        frames = tf.signal.frame(samples, VGGISH_FRAME, VGGISH_FRAME, pad_end=True)
        slices = tf.reshape(frames, [-1, VGGISH_WIDTH, VGGISH_FRAME // VGGISH_WIDTH])
        return tf.sqrt(tf.reduce_mean(tf.square(slices), axis=-1)) * self.scale


def build_vggish_like(directory: str | Path) -> Path:
    """Write the VGGish-like TF2 SavedModel (signature ``default``, one output)."""
    module = _VggishLike()
    tf.saved_model.save(module, str(directory), signatures={"default": module.embed.get_concrete_function()})
    return Path(directory)


# --- TRILL-like ------------------------------------------------------------------------------


def trill_like_embeddings(waveforms: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 [batch, samples] -> [batch, frames, TRILL_WIDTH], the TRILL-like ``embedding``."""
    frames = _frames(waveforms, TRILL_FRAME, TRILL_HOP)
    return frames @ _weights("trill", (TRILL_FRAME, TRILL_WIDTH)) * np.float32(sample_rate / SAMPLE_RATE)


def trill_like_layer19(waveforms: np.ndarray) -> np.ndarray:
    """float32 [batch, samples] -> [batch, frames, TRILL_LAYER19_WIDTH], the TRILL-like ``layer19``."""
    frames = _frames(waveforms, TRILL_FRAME, TRILL_HOP)
    return np.tanh(frames @ _weights("trill_layer19", (TRILL_FRAME, TRILL_LAYER19_WIDTH)))


def build_trill_like(
    directory: str | Path, *, input_key: str = TRILL_INPUT, placeholder_name: str | None = "audio_samples"
) -> Path:
    """Write the TRILL-like TF1 Hub format module. `input_key`: the waveform's key in the signature
    (TRILL v3 names it ``samples``, which sorts after ``sample_rate``); `placeholder_name`: its
    placeholder's name in the graph (None: unnamed)."""
    directory = Path(directory)
    graph = tf.Graph()
    with graph.as_default():
        audio = tf.compat.v1.placeholder(tf.float32, [None, None], name=placeholder_name)
        sample_rate = tf.compat.v1.placeholder(tf.int32, [], name="rate")
        # use_resource=False: VariableV2 ops, the TF1 reference variables that only freezing serves.
        projection, layer19 = (
            tf.compat.v1.Variable(_weights(name, shape), name=name, use_resource=False)
            for name, shape in (
                ("trill", (TRILL_FRAME, TRILL_WIDTH)),
                ("trill_layer19", (TRILL_FRAME, TRILL_LAYER19_WIDTH)),
            )
        )
        frames = tf.signal.frame(audio, TRILL_FRAME, TRILL_HOP)
        scale = tf.cast(sample_rate, tf.float32) / SAMPLE_RATE
        outputs = {
            "embedding": tf.einsum("bfs,sw->bfw", frames, projection) * scale,
            "layer19": tf.tanh(tf.einsum("bfs,sw->bfw", frames, layer19)),
        }
        signature = _signature_def({input_key: audio, TRILL_SAMPLE_RATE_INPUT: sample_rate}, outputs)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(directory))
            builder.add_meta_graph_and_variables(session, tags=[], signature_def_map={"default": signature})
            builder.save()
    (directory / TF1_HUB_MARKER).write_bytes(TF1_HUB_MARKER_BYTES)
    return directory
