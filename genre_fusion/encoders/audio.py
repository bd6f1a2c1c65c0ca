"""Pretrained audio encoders behind one seam: musicnn, or any TF Hub audio module.

An encoder turns waveforms float32 [batch, samples] (mono, at `AudioEncoderSpec.sample_rate`)
into a sequence of vectors per waveform, float32 [batch, patches, width], one per fixed-length
patch (musicnn) or frame (TF Hub modules). Two users:

- `data_prep build` calls `AudioEncoder.embed` on each batch of songs, once per song, and records
  `AudioEncoder.spec` (meta.json's features);
- the export puts `AudioEncoder.export_layer` into the SavedModel: the same computation as a Keras
  3 layer, the module a tracked attribute, a TF1 module frozen first (`freezing.freeze_module`).

`embed` runs the very layer the export gets (frozen copy aside), so a song is encoded one way.

Encoders, by `load_audio_encoder` name:

- ``musicnn-msd``, ``musicnn-mtt`` (`genre_fusion.encoders.musicnn`): 16 kHz; outputs
  ``penultimate`` (200), ``mean_pool`` and ``max_pool`` (753), ``pooled`` (both concatenated,
  mean first: 1506), one row per 2.992 s patch, no overlap, the tail dropped. Frozen, inference mode.
- a TF Hub handle (a URL, a module folder; ``yamnet``, ``vggish`` and ``trill`` name their
  tfhub.dev handles), loaded through `genre_fusion.encoders.handles` (``TFHUB_CACHE_DIR``, quick
  failure offline). Its signature (``default``, ``serving_default`` or the only one) must take one
  float32 waveform, [samples] as YAMNet and VGGish or [batch, samples] as TRILL, whatever its name,
  and may take an integer scalar whose name holds ``sample_rate`` (TRILL's), fed `HUB_SAMPLE_RATE`.
  The output stored is `output_key`, or by default the one output named ``*embedding*``, else the
  only float output with a frames axis; an unbatched module is called once per waveform.
  All documented modules take 16 kHz, which a module does not declare: `HUB_SAMPLE_RATE`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import load_module
from genre_fusion.encoders.musicnn import MUSICNN_MODELS, Musicnn, load_musicnn
from genre_fusion.encoders.musicnn_log_mel import FFT_HOP, MusicnnLogMelPatches
from genre_fusion.encoders.musicnn_log_mel import SAMPLE_RATE as MUSICNN_SAMPLE_RATE
from genre_fusion.encoders.signatures import is_tf1_module, signature_function

LOG_MEL_ENCODER = "log-mel"  # the from-scratch CNN on log-mels: no pretrained encoder
MUSICNN_ENCODERS = tuple(MUSICNN_MODELS)
MUSICNN_POOLED = "pooled"
MUSICNN_OUTPUTS = ("penultimate", "mean_pool", "max_pool", MUSICNN_POOLED)
# For now: a comparison of the outputs on real music will decide the default.
MUSICNN_DEFAULT_OUTPUT = "penultimate"
YAMNET_HANDLE = "https://tfhub.dev/google/yamnet/1"
VGGISH_HANDLE = "https://tfhub.dev/google/vggish/1"
TRILL_HANDLE = "https://tfhub.dev/google/nonsemantic-speech-benchmark/trill/3"
HUB_AUDIO_MODULES = {"yamnet": YAMNET_HANDLE, "vggish": VGGISH_HANDLE, "trill": TRILL_HANDLE}
# A module yields frames but not how long each is: only their hop is measured. These lengths are
# the model cards'; other modules record their hop as patch length.
KNOWN_PATCH_SECONDS = {YAMNET_HANDLE: 0.96, VGGISH_HANDLE: 0.96}
HUB_SAMPLE_RATE = 16_000
SAMPLE_RATE_INPUT = "sample_rate"
EMBEDDING_OUTPUT = "embedding"
OUTPUT_KEY_OPTION = "--audio-output-key"
DEFAULT_BATCH_SIZE = 8
FROZEN_FOLDER = "frozen_audio_encoder"
# Measuring a module's frames: probes from PROBE_SECONDS, doubled until one gives GRID_FRAMES
# frames (the grid is read between its last two, past any padding of a first frame).
PROBE_SECONDS = 2.0
MAX_PROBE_SECONDS = 64.0
GRID_FRAMES = 3
PROBE_FREQUENCY_HZ = 440.0
PROBE_AMPLITUDE = 0.5


@dataclass(frozen=True)
class AudioEncoderSpec:
    """What the shards record (meta.json's features): `name` (the name or handle as given),
    `sample_rate` (Hz the encoder takes), `output_key` (which output is stored), `width`,
    `patch_seconds` and `hop_seconds` (length and hop of one patch or frame; a TF Hub module's
    patch length is not observable: its hop, unless `KNOWN_PATCH_SECONDS` has it), and
    `first_patch_samples` (the fewest samples that give one patch on the encoder's grid; a
    module that pads shorter waveforms still gives one for them)."""

    name: str
    sample_rate: int
    output_key: str
    width: int
    patch_seconds: float
    hop_seconds: float
    first_patch_samples: int

    @property
    def hop_samples(self) -> int:
        return round(self.hop_seconds * self.sample_rate)

    def patches(self, samples: int) -> int:
        """Patches the encoder yields for a waveform of `samples` samples."""
        if samples < self.first_patch_samples:
            return 0
        return 1 + (samples - self.first_patch_samples) // self.hop_samples


# --- musicnn ---------------------------------------------------------------------------------


def _musicnn_layer(model: keras.Model, kind: type[keras.layers.Layer]):
    """The one layer of `kind` in a `load_musicnn` model: `MusicnnLogMelPatches` or `Musicnn`."""
    (layer,) = (layer for layer in model.layers if isinstance(layer, kind))
    return layer


@keras.saving.register_keras_serializable(package="genre_fusion")
class MusicnnEmbedding(keras.layers.Layer):
    """musicnn (`load_musicnn`) frozen, in inference mode, one output picked.

    Input: waveforms float32 [batch, samples], mono, 16 kHz. Output: float32 [batch, patches,
    width], `output_key` one of `MUSICNN_OUTPUTS` (``pooled``: ``mean_pool`` then ``max_pool``).
    `encoder`: ``musicnn-msd`` or ``musicnn-mtt``; the weights are read again from the musicnn
    package when the layer is rebuilt from its config."""

    def __init__(self, encoder: str, output_key: str = MUSICNN_DEFAULT_OUTPUT, **kwargs):
        super().__init__(**kwargs)
        if output_key not in MUSICNN_OUTPUTS:
            raise ValueError(
                f"musicnn has no output {output_key!r}; its outputs: {', '.join(MUSICNN_OUTPUTS)} "
                f"(pass one with {OUTPUT_KEY_OPTION})"
            )
        self.encoder = encoder
        self.output_key = output_key
        self.musicnn = load_musicnn(encoder)
        self.musicnn.trainable = False  # its batch norms too: no training of musicnn's weights
        self.trainable = False
        network = _musicnn_layer(self.musicnn, Musicnn)
        pool = network.midend_width
        widths = {
            "penultimate": network.backend_units,
            "mean_pool": pool,
            "max_pool": pool,
            MUSICNN_POOLED: 2 * pool,
        }
        self.width = widths[output_key]

    def call(self, waveforms):
        outputs = self.musicnn(waveforms, training=False)
        if self.output_key == MUSICNN_POOLED:
            return ops.concatenate([outputs["mean_pool"], outputs["max_pool"]], axis=-1)
        return outputs[self.output_key]

    def compute_output_shape(self, input_shape):
        patches = _musicnn_layer(self.musicnn, MusicnnLogMelPatches).compute_output_shape(input_shape)[1]
        return (input_shape[0], patches, self.width)

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder, "output_key": self.output_key}


# --- TF Hub modules --------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioSignature:
    """How to call a TF Hub audio module: signature `key`; its waveform input `input_name`,
    [batch, samples] when `batched`, else [samples]; its integer `sample_rate_input` ("" when it
    has none) of `sample_rate_dtype`; the `output_key` stored and its `width`."""

    key: str
    input_name: str
    batched: bool
    sample_rate_input: str
    sample_rate_dtype: tf.DType | None
    output_key: str
    width: int

    def outputs(self, module, waveforms: tf.Tensor) -> dict[str, tf.Tensor]:
        """Waveforms float32 [batch, samples] (batched) or [samples] -> every output of the signature."""
        inputs = {self.input_name: waveforms}
        if self.sample_rate_input:
            inputs[self.sample_rate_input] = tf.constant(HUB_SAMPLE_RATE, self.sample_rate_dtype)
        return module.signatures[self.key](**inputs)


def _shape(shape: tf.TensorShape) -> str:
    return "[?]" if shape.rank is None else str(shape.as_list())


def _describe_inputs(function) -> str:
    inputs = function.structured_input_signature[1]
    return ", ".join(
        f"{name}: {spec.dtype.name} {_shape(spec.shape)}" for name, spec in sorted(inputs.items())
    )


def _no_waveform_signature(module, handle: str) -> ValueError:
    signatures = "; ".join(f"{key}({_describe_inputs(f)})" for key, f in sorted(module.signatures.items()))
    return ValueError(
        f"module {handle!r} has no audio signature: one (default, serving_default or the only one) "
        "must take a single float32 waveform [samples] or [batch, samples], and at most an integer "
        f"scalar named *{SAMPLE_RATE_INPUT}*; its signatures: {signatures or 'none'}"
    )


def _probe_waveform(samples: int) -> np.ndarray:
    """A tone float32 [samples] at HUB_SAMPLE_RATE: a module normalising its input by the peak
    would divide silence by zero."""
    seconds = np.arange(samples) / HUB_SAMPLE_RATE
    return (PROBE_AMPLITUDE * np.sin(2 * np.pi * PROBE_FREQUENCY_HZ * seconds)).astype(np.float32)


def hub_audio_signature(module, output_key: str = "", handle: str = "") -> AudioSignature:
    """Inspect a loaded TF Hub module and run it once on a PROBE_SECONDS tone to learn its outputs.

    `output_key` "" picks the one output named ``*embedding*``, else the only float output with a
    frames axis ([frames, width] per waveform). Raises ValueError when the module has no audio
    signature (listing its signatures and inputs), or no such output, or cannot tell which output
    to store (listing the outputs)."""
    try:
        key, function = signature_function(module, handle)
    except ValueError:
        raise _no_waveform_signature(module, handle) from None
    inputs = function.structured_input_signature[1]
    waveforms = [n for n, spec in inputs.items() if spec.dtype == tf.float32 and spec.shape.rank in (1, 2)]
    rates = [
        n
        for n, spec in inputs.items()
        if spec.dtype.is_integer and spec.shape.rank == 0 and SAMPLE_RATE_INPUT in n.lower()
    ]
    if len(waveforms) != 1 or len(rates) > 1 or len(inputs) != len(waveforms) + len(rates):
        raise _no_waveform_signature(module, handle)
    (input_name,) = waveforms
    batched = inputs[input_name].shape.rank == 2
    output_rank = 3 if batched else 2  # [batch,] frames, width
    rate_name = rates[0] if rates else ""
    found = AudioSignature(
        key, input_name, batched, rate_name, inputs[rate_name].dtype if rates else None, "", 0
    )
    probe = _probe_waveform(round(PROBE_SECONDS * HUB_SAMPLE_RATE))
    outputs = found.outputs(module, tf.constant(probe[None] if batched else probe))
    framed = [
        n for n, value in outputs.items() if value.dtype.is_floating and value.shape.rank == output_rank
    ]
    listing = f"its outputs (for a {PROBE_SECONDS:g} s waveform): " + ", ".join(
        f"{n} {value.dtype.name} {_shape(value.shape)}" for n, value in sorted(outputs.items())
    )
    where = f"module {handle!r}, signature {key!r}"
    per_waveform = "[batch, frames, width]" if batched else "[frames, width]"
    if output_key and output_key not in outputs:
        raise ValueError(f"{where} has no output {output_key!r}; {listing}")
    if output_key and output_key not in framed:
        raise ValueError(
            f"{where}: output {output_key!r} is not a float sequence of frames {per_waveform}; {listing}"
        )
    if not output_key:
        named = [n for n in framed if EMBEDDING_OUTPUT in n.lower()]
        candidates = named if len(named) == 1 else framed
        if len(candidates) != 1:
            raise ValueError(
                f"{where}: cannot tell which output holds the embeddings (not one float {per_waveform} "
                f"output named *{EMBEDDING_OUTPUT}*, nor a single one of that shape); {listing}. "
                f"Pass the one to store with {OUTPUT_KEY_OPTION}."
            )
        (output_key,) = candidates
    return replace(found, output_key=output_key, width=int(outputs[output_key].shape[-1]))


@keras.saving.register_keras_serializable(package="genre_fusion")
class HubAudioEmbedding(keras.layers.Layer):
    """A TF Hub audio module as a Keras 3 layer (frozen: the module's variables are not trained).

    Input: waveforms float32 [batch, samples], mono, at HUB_SAMPLE_RATE. Output: float32 [batch,
    frames, width], the module's `output_key` ("": see `hub_audio_signature`). An unbatched module
    is mapped over the batch, one call per waveform.

    For a SavedModel export with a TF1 module (TRILL), build the layer on the module's
    `freeze_module` folder (`HubAudioEncoder.export_layer` does), or the export fails when served.
    """

    def __init__(self, handle: str, output_key: str = "", **kwargs):
        super().__init__(**kwargs)
        self.handle = handle
        self.output_key = output_key
        # A trackable attribute: the module's functions and variables go into SavedModel exports.
        self.hub_module = load_module(handle)
        self.signature = hub_audio_signature(self.hub_module, output_key, handle)
        # The module's graph is not for XLA (Keras's jit_compile="auto").
        self.supports_jit = False
        self.trainable = False

    @property
    def width(self) -> int:
        return self.signature.width

    def _encode(self, waveforms):
        return tf.cast(
            self.signature.outputs(self.hub_module, waveforms)[self.signature.output_key], tf.float32
        )

    def call(self, waveforms):
        waveforms = tf.cast(waveforms, tf.float32)
        if self.signature.batched:
            return self._encode(waveforms)
        return tf.map_fn(
            self._encode, waveforms, fn_output_signature=tf.TensorSpec([None, self.width], tf.float32)
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, self.width)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "output_key": self.output_key}


def measure_frame_grid(frames: Callable[[int], int], description: str) -> tuple[int, int]:
    """A module's frame grid, probed: `frames(samples)` -> the frames it yields for a waveform of
    that many samples (growing with it). Returns (first_patch_samples, hop_samples) such that
    frames(n) = 1 + (n - first_patch_samples) // hop_samples for n >= first_patch_samples.

    Finds the fewest samples giving each of two consecutive frame counts (bisection, ~17 probes
    each), then checks every probe against the grid. Raises ValueError when no probe up to
    MAX_PROBE_SECONDS gives GRID_FRAMES frames (a pooled output), or the frames follow no grid."""
    counts: dict[int, int] = {}

    def count(samples: int) -> int:
        if samples not in counts:
            counts[samples] = frames(samples)
        return counts[samples]

    length = round(PROBE_SECONDS * HUB_SAMPLE_RATE)
    while count(length) < GRID_FRAMES:
        if length >= MAX_PROBE_SECONDS * HUB_SAMPLE_RATE:
            raise ValueError(
                f"{description} gives {counts[length]} frames for {length / HUB_SAMPLE_RATE:g} s of audio: "
                "not a sequence of frames (a pooled output?)"
            )
        length *= 2

    def fewest_samples(target: int) -> int:
        low = max((n for n, got in counts.items() if got < target), default=0)
        high = min(n for n, got in counts.items() if got >= target)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if count(middle) >= target else (middle, high)
        return high

    last = counts[length]
    end = fewest_samples(last)
    start = fewest_samples(last - 1)
    hop = end - start
    first = start - (last - 2) * hop
    off_grid = {n: got for n, got in counts.items() if n >= first and got != 1 + (n - first) // hop}
    if off_grid or hop < 1:
        probes = dict(sorted(counts.items()))
        raise ValueError(f"{description}: its frames follow no fixed hop (samples -> frames: {probes})")
    return first, hop


# --- the seam --------------------------------------------------------------------------------


class AudioEncoder(abc.ABC):
    """A pretrained audio encoder: `spec` (what the shards record), `embed` for the build,
    `export_layer` for the export. `calls` counts the waveforms sent to the encoder by `embed`
    (probes excluded); `batch_size` bounds the waveforms sent at once (memory)."""

    def __init__(self, spec: AudioEncoderSpec, layer: keras.layers.Layer, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self.layer = layer
        self.batch_size = batch_size
        self.calls = 0
        # Traced once per input shape: a build's clips all have one length.
        self._encode = tf.function(layer)

    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """float32 [batch, samples] at spec.sample_rate -> float32 [batch, patches, width],
        patches = spec.patches(samples)."""
        if waveforms.ndim != 2 or waveforms.dtype != np.float32:
            raise ValueError(
                f"waveforms must be float32 [batch, samples] at {self.spec.sample_rate} Hz, "
                f"got {waveforms.dtype} {list(waveforms.shape)}"
            )
        if not len(waveforms):
            return np.zeros((0, self.spec.patches(waveforms.shape[1]), self.spec.width), np.float32)
        parts = []
        for start in range(0, len(waveforms), self.batch_size):
            batch = waveforms[start : start + self.batch_size]
            parts.append(self._encode(tf.constant(batch)).numpy())
            self.calls += len(batch)
        return np.concatenate(parts)

    @abc.abstractmethod
    def export_layer(self, workdir: Path) -> keras.layers.Layer:
        """A Keras 3 layer: float32 [batch, samples] -> float32 [batch, patches, width], saveable in
        a SavedModel; what it needs on disk (a frozen TF1 module) is written under `workdir`."""


class MusicnnEncoder(AudioEncoder):
    """musicnn-msd or musicnn-mtt (`MusicnnEmbedding`)."""

    def __init__(self, name: str, output_key: str, batch_size: int = DEFAULT_BATCH_SIZE):
        layer = MusicnnEmbedding(name, output_key)
        log_mel = _musicnn_layer(layer.musicnn, MusicnnLogMelPatches)
        spec = AudioEncoderSpec(
            name=name,
            sample_rate=MUSICNN_SAMPLE_RATE,
            output_key=output_key,
            width=layer.width,
            patch_seconds=log_mel.patch_frames * FFT_HOP / MUSICNN_SAMPLE_RATE,
            hop_seconds=log_mel.patch_hop * FFT_HOP / MUSICNN_SAMPLE_RATE,
            # Frames are centred (frame i at sample i * FFT_HOP): a patch of patch_frames frames
            # needs (patch_frames - 1) hops of samples.
            first_patch_samples=(log_mel.patch_frames - 1) * FFT_HOP,
        )
        super().__init__(spec, layer, batch_size)

    def export_layer(self, workdir: Path) -> keras.layers.Layer:
        """The encoder's own layer: nothing is written to `workdir`."""
        return self.layer


class HubAudioEncoder(AudioEncoder):
    """A TF Hub audio module (`HubAudioEmbedding`); its frame grid is measured on load
    (`measure_frame_grid`, a few dozen probes of up to a few seconds)."""

    def __init__(self, name: str, handle: str, output_key: str = "", batch_size: int = DEFAULT_BATCH_SIZE):
        self.handle = handle
        layer = HubAudioEmbedding(handle, output_key)
        signature = layer.signature

        def frames(samples: int) -> int:
            return int(layer(tf.constant(_probe_waveform(samples)[None])).shape[1])

        first, hop = measure_frame_grid(frames, f"module {handle!r}, output {signature.output_key!r}")
        spec = AudioEncoderSpec(
            name=name,
            sample_rate=HUB_SAMPLE_RATE,
            output_key=signature.output_key,
            width=signature.width,
            patch_seconds=KNOWN_PATCH_SECONDS.get(handle, hop / HUB_SAMPLE_RATE),
            hop_seconds=hop / HUB_SAMPLE_RATE,
            first_patch_samples=first,
        )
        super().__init__(spec, layer, batch_size)

    def export_layer(self, workdir: Path) -> keras.layers.Layer:
        """The encoder's own layer for a TF2 module; for a TF1 module, a layer on its frozen copy,
        written to `workdir` / FROZEN_FOLDER (which must not exist or be empty)."""
        if not is_tf1_module(self.handle):
            return self.layer
        frozen = freeze_module(
            self.handle, Path(workdir) / FROZEN_FOLDER, self.spec.output_key, check=hub_audio_signature
        )
        return HubAudioEmbedding(str(frozen), self.spec.output_key)


def _is_handle(name: str) -> bool:
    """Whether `name` reads as a URL or a path rather than an encoder name."""
    return "/" in name or os.sep in name or name.startswith("~") or os.path.exists(name)


def load_audio_encoder(name: str, output_key: str = "", batch_size: int = DEFAULT_BATCH_SIZE) -> AudioEncoder:
    """An encoder by name (``musicnn-msd``, ``musicnn-mtt``, ``yamnet``, ``vggish``, ``trill``), TF
    Hub URL or module folder; `output_key` "" is the encoder's default output. Raises ValueError
    for `LOG_MEL_ENCODER`, an unknown name or output, a module without an audio signature, and
    `ModuleUnavailable` when the module or musicnn's weights cannot be had."""
    if name == LOG_MEL_ENCODER:
        raise ValueError(
            f"{LOG_MEL_ENCODER!r} is the from-scratch CNN on log-mels: it has no pretrained encoder to load"
        )
    if name in MUSICNN_ENCODERS:
        return MusicnnEncoder(name, output_key or MUSICNN_DEFAULT_OUTPUT, batch_size)
    if name in HUB_AUDIO_MODULES or _is_handle(name):
        return HubAudioEncoder(name, HUB_AUDIO_MODULES.get(name, name), output_key, batch_size)
    known = ", ".join([*MUSICNN_ENCODERS, *HUB_AUDIO_MODULES])
    raise ValueError(
        f"unknown audio encoder {name!r}; known: {known} ({LOG_MEL_ENCODER!r}: none, the from-scratch "
        "CNN). A TF Hub handle (URL) or a module folder also works."
    )
