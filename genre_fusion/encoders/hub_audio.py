"""TF Hub audio modules as pretrained audio encoders (`genre_fusion.encoders.audio`): how to call a
module (`hub_audio_signature`), the module as a Keras 3 layer (`HubAudioEmbedding`), its frame grid
(`measure_frame_grid`) and its `AudioEncoder` (`HubAudioEncoder`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genre_fusion.encoders.audio import DEFAULT_BATCH_SIZE, OUTPUT_KEY_OPTION, AudioEncoder, AudioEncoderSpec
from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import load_module
from genre_fusion.encoders.signatures import is_tf1_module, signature_function

HUB_SAMPLE_RATE = 16_000
SAMPLE_RATE_INPUT = "sample_rate"
EMBEDDING_OUTPUT = "embedding"
FROZEN_FOLDER = "frozen_audio_encoder"
# Measuring a module's frames: probes from PROBE_SECONDS, doubled until one gives GRID_FRAMES
# frames (the grid is read between its last two, past any padding of a first frame).
PROBE_SECONDS = 2.0
MAX_PROBE_SECONDS = 64.0
GRID_FRAMES = 3
PROBE_FREQUENCY_HZ = 440.0
PROBE_AMPLITUDE = 0.5


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


class HubAudioEncoder(AudioEncoder):
    """A TF Hub audio module (`HubAudioEmbedding`); its frame grid is measured on load
    (`measure_frame_grid`, a few dozen probes of up to a few seconds). `patch_seconds`: the
    length of a frame, which a module does not declare (None: its hop)."""

    def __init__(
        self,
        name: str,
        handle: str,
        output_key: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        patch_seconds: float | None = None,
    ):
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
            patch_seconds=hop / HUB_SAMPLE_RATE if patch_seconds is None else patch_seconds,
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
