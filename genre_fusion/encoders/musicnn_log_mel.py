"""musicnn's input, in the graph: a 16 kHz waveform cut into log-mel patches as musicnn cuts it.

musicnn 0.1.0 computes its input in numpy (`musicnn/extractor.py`, `batch_data`): librosa's
``melspectrogram(y, sr=16000, hop_length=256, n_fft=512, n_mels=96)`` with librosa's defaults
(periodic Hann window, frames centred on zero padding as librosa 0.11 pads, power 2, Slaney mel
scale with Slaney area normalisation, 0 Hz to Nyquist), stored as float16, then
``log10(10000 * mel + 1)`` in float16 arithmetic, then patches of `PATCH_FRAMES` frames every
`patch_hop` frames from frame 0, the tail that does not fill a patch dropped. Its models were
trained on the same float16 arithmetic (musicnn-training's ``preprocess_librosa.py`` and
``train.py``), so this layer rounds where numpy rounds, with one exception: where the float16
product overflows (mel power above 6.55, a loud low tone), musicnn's extractor gets inf and its
network NaN; here the value is computed in float32 instead, beyond the ~4.82 the network saw
in training.

The mel filterbank is built here in numpy from Slaney's formulas (librosa is not a runtime
dependency); keras.layers.MelSpectrogram and tf.signal build HTK filters without area norm.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

SAMPLE_RATE = 16_000
FFT_SIZE = 512
FFT_HOP = 256
MEL_BINS = 96
# librosa.time_to_frames(3 s, sr=16000, n_fft=512, hop_length=256) + 1, as the extractor computes
# its `input_length=3`; its default `input_overlap=False` makes the hop a whole patch.
PATCH_FRAMES = 187
LOG_SCALE = 10_000.0
# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
SLANEY_HZ_PER_MEL = 200.0 / 3.0
SLANEY_LOG_HZ = 1_000.0
SLANEY_LOG_MEL = SLANEY_LOG_HZ / SLANEY_HZ_PER_MEL
SLANEY_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    log_mel = SLANEY_LOG_MEL + np.log(np.maximum(hz, SLANEY_LOG_HZ) / SLANEY_LOG_HZ) / SLANEY_LOG_STEP
    return np.where(hz >= SLANEY_LOG_HZ, log_mel, hz / SLANEY_HZ_PER_MEL)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    log_hz = SLANEY_LOG_HZ * np.exp(SLANEY_LOG_STEP * (mel - SLANEY_LOG_MEL))
    return np.where(mel >= SLANEY_LOG_MEL, log_hz, mel * SLANEY_HZ_PER_MEL)


def slaney_mel_filterbank(
    sample_rate: int = SAMPLE_RATE, fft_size: int = FFT_SIZE, mel_bins: int = MEL_BINS
) -> np.ndarray:
    """float32 [fft_size // 2 + 1, mel_bins]: power spectrum bins -> mel bands, as
    ``librosa.filters.mel(sr=sample_rate, n_fft=fft_size, n_mels=mel_bins).T`` (computed in
    float64 like librosa): triangles between mel-spaced edges from 0 Hz to Nyquist, each scaled
    to area 2 / (its width in Hz)."""
    edges = _slaney_mel_to_hz(np.linspace(0.0, _hz_to_slaney_mel(np.float64(sample_rate / 2)), mel_bins + 2))
    bin_hz = np.linspace(0.0, sample_rate / 2, fft_size // 2 + 1)
    widths = np.diff(edges)
    ramps = edges[:, None] - bin_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


def _as_float16(values):
    """float32 values rounded to float16 (as numpy's float16 arithmetic rounds each result); values
    float16 cannot hold are kept, where numpy would give inf."""
    rounded = ops.cast(ops.cast(values, "float16"), "float32")
    return ops.where(ops.isinf(rounded), values, rounded)


def musicnn_log(mel_power):
    """Mel power (float32, any shape) -> ``log10(10000 * mel + 1)`` rounded as the extractor's
    float16 arithmetic rounds it (`_as_float16` after every step)."""
    stored = _as_float16(mel_power)
    scaled = _as_float16(LOG_SCALE * stored)
    return _as_float16(ops.log10(_as_float16(scaled + 1.0)))


@keras.saving.register_keras_serializable(package="genre_fusion")
class MusicnnLogMelPatches(keras.layers.Layer):
    """Waveforms [batch, samples] (mono, 16 kHz, float) -> musicnn's log-mel patches float32
    [batch, patches, patch_frames, 96] (time, then mel bin), the extractor's ``batch_data``.

    The waveform gives frames = 1 + samples // 256 (centred frames) and patches =
    (frames - patch_frames) // patch_hop + 1, patch i starting at frame i * patch_hop; the frames
    after the last whole patch are dropped. A waveform shorter than `patch_frames` frames (2.98 s
    for the default) gives zero patches, where the extractor fails.
    """

    def __init__(self, patch_frames: int = PATCH_FRAMES, patch_hop: int = PATCH_FRAMES, **kwargs):
        super().__init__(**kwargs)
        if patch_frames < 1 or patch_hop < 1:
            raise ValueError(f"patch_frames and patch_hop must be >= 1, got {patch_frames}, {patch_hop}")
        self.patch_frames = patch_frames
        self.patch_hop = patch_hop
        self.filterbank = slaney_mel_filterbank()

    def call(self, waveforms):
        waveforms = ops.cast(waveforms, "float32")
        # librosa 0.11 centres frames on zeros (pad_mode="constant"); ops.stft's centring reflects.
        padded = ops.pad(waveforms, ((0, 0), (FFT_SIZE // 2, FFT_SIZE // 2)))
        real, imag = ops.stft(padded, FFT_SIZE, FFT_HOP, FFT_SIZE, window="hann", center=False)
        mel_power = ops.matmul(ops.square(real) + ops.square(imag), self.filterbank)
        log_mel = musicnn_log(mel_power)  # [batch, frames, mel bins]
        patches = ops.maximum((ops.shape(log_mel)[1] - self.patch_frames) // self.patch_hop + 1, 0)
        frames = ops.arange(patches)[:, None] * self.patch_hop + ops.arange(self.patch_frames)[None, :]
        return ops.take(log_mel, frames, axis=1)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        patches = None
        if samples is not None:
            patches = max((1 + samples // FFT_HOP - self.patch_frames) // self.patch_hop + 1, 0)
        return (input_shape[0], patches, self.patch_frames, MEL_BINS)

    def get_config(self):
        return {**super().get_config(), "patch_frames": self.patch_frames, "patch_hop": self.patch_hop}
