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

- ``musicnn-msd``, ``musicnn-mtt`` (`genre_fusion.encoders.musicnn_embedding`): 16 kHz; outputs
  ``penultimate`` (200), ``mean_pool`` and ``max_pool`` (753), ``pooled`` (both concatenated,
  mean first: 1506), one row per 2.992 s patch, no overlap, the tail dropped. Frozen, inference mode.
- a TF Hub handle (a URL, a module folder; ``yamnet``, ``vggish`` and ``trill`` name their
  tfhub.dev handles; `genre_fusion.encoders.hub_audio`), loaded through
  `genre_fusion.encoders.handles` (``TFHUB_CACHE_DIR``, quick failure offline). Its signature
  (``default``, ``serving_default`` or the only one) must take one float32 waveform, [samples] as
  YAMNet and VGGish or [batch, samples] as TRILL, whatever its name, and may take an integer
  scalar whose name holds ``sample_rate`` (TRILL's), fed ``HUB_SAMPLE_RATE``. The output stored is
  `output_key`, or by default the one output named ``*embedding*``, else the only float output
  with a frames axis; an unbatched module is called once per waveform.
  All documented modules take 16 kHz, which a module does not declare: ``HUB_SAMPLE_RATE``.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genre_fusion.encoders.musicnn import MUSICNN_MODELS
from genre_fusion.features.config import LOG_MEL_ENCODER

MUSICNN_ENCODERS = tuple(MUSICNN_MODELS)
MUSICNN_POOLED = "pooled"
MUSICNN_OUTPUTS = ("penultimate", "mean_pool", "max_pool", MUSICNN_POOLED)
# The pooled mid-end features serve genre better than the 200-unit penultimate layer: on 480
# rendered real scores in 8 styles (bench/linear_probe.py, grouped 5-fold logistic regression)
# max_pool scored 0.883 (mtt) / 0.856 (msd) against penultimate's 0.835 / 0.844.
MUSICNN_DEFAULT_OUTPUT = "max_pool"
YAMNET_HANDLE = "https://tfhub.dev/google/yamnet/1"
VGGISH_HANDLE = "https://tfhub.dev/google/vggish/1"
TRILL_HANDLE = "https://tfhub.dev/google/nonsemantic-speech-benchmark/trill/3"
HUB_AUDIO_MODULES = {"yamnet": YAMNET_HANDLE, "vggish": VGGISH_HANDLE, "trill": TRILL_HANDLE}
# A module yields frames but not how long each is: only their hop is measured. These lengths are
# the model cards'; other modules record their hop as patch length.
KNOWN_PATCH_SECONDS = {YAMNET_HANDLE: 0.96, VGGISH_HANDLE: 0.96}
OUTPUT_KEY_OPTION = "--audio-output-key"
DEFAULT_BATCH_SIZE = 8


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


def _is_handle(name: str) -> bool:
    """Whether `name` reads as a URL or a path rather than an encoder name."""
    return "/" in name or os.sep in name or name.startswith("~") or os.path.exists(name)


def load_audio_encoder(name: str, output_key: str = "", batch_size: int = DEFAULT_BATCH_SIZE) -> AudioEncoder:
    """An encoder by name (``musicnn-msd``, ``musicnn-mtt``, ``yamnet``, ``vggish``, ``trill``), TF
    Hub URL or module folder; `output_key` "" is the encoder's default output. Raises ValueError
    for `LOG_MEL_ENCODER`, an unknown name or output, a module without an audio signature, and
    `ModuleUnavailable` when the module or musicnn's weights cannot be had."""
    # Imported here: the encoders' modules import this one's names and base class.
    from genre_fusion.encoders.hub_audio import HubAudioEncoder
    from genre_fusion.encoders.musicnn_embedding import MusicnnEncoder

    if name == LOG_MEL_ENCODER:
        raise ValueError(
            f"{LOG_MEL_ENCODER!r} is the from-scratch CNN on log-mels: it has no pretrained encoder to load"
        )
    if name in MUSICNN_ENCODERS:
        return MusicnnEncoder(name, output_key or MUSICNN_DEFAULT_OUTPUT, batch_size)
    if name in HUB_AUDIO_MODULES or _is_handle(name):
        handle = HUB_AUDIO_MODULES.get(name, name)
        return HubAudioEncoder(name, handle, output_key, batch_size, KNOWN_PATCH_SECONDS.get(handle))
    known = ", ".join([*MUSICNN_ENCODERS, *HUB_AUDIO_MODULES])
    raise ValueError(
        f"unknown audio encoder {name!r}; known: {known} ({LOG_MEL_ENCODER!r}: none, the from-scratch "
        "CNN). A TF Hub handle (URL) or a module folder also works."
    )
