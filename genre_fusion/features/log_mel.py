"""Log-mel spectrogram as a Keras layer, so the exported model computes it in its own graph."""

from __future__ import annotations

import keras
from keras import ops

from genre_fusion.features.config import DEFAULT_MEL_FMIN, DEFAULT_TOP_DB, FeatureConfig

MIN_POWER = 1e-10


@keras.saving.register_keras_serializable(package="genre_fusion")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms [batch, samples] float32 -> log-mel power in dB [batch, mel_bins, frames].

    Built on `keras.layers.MelSpectrogram` (tf.signal on the TensorFlow backend). The dB scale is
    applied here, per example: Keras' own `power_to_db` clips at `top_db` below the maximum of the
    whole batch, so a song's features would depend on which songs share its batch.
    """

    def __init__(
        self,
        sample_rate: int = 22_050,
        n_fft: int = 2048,
        hop_length: int = 512,
        mel_bins: int = 128,
        top_db: float = DEFAULT_TOP_DB,
        min_freq: float = DEFAULT_MEL_FMIN,
        max_freq: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.mel_bins = mel_bins
        self.top_db = top_db
        self.min_freq = min_freq
        self.max_freq = max_freq
        self.mel_power = keras.layers.MelSpectrogram(
            fft_length=n_fft,
            sequence_stride=hop_length,
            sequence_length=n_fft,
            sampling_rate=sample_rate,
            num_mel_bins=mel_bins,
            min_freq=min_freq,
            max_freq=max_freq,
            power_to_db=False,
            dtype="float32",
        )

    @classmethod
    def from_features(cls, features: FeatureConfig, **kwargs) -> LogMelSpectrogram:
        return cls(
            sample_rate=features.sample_rate,
            n_fft=features.n_fft,
            hop_length=features.hop_length,
            mel_bins=features.mel_bins,
            top_db=features.top_db,
            min_freq=features.mel_fmin,
            max_freq=features.mel_fmax_hz,
            **kwargs,
        )

    def call(self, waveforms):
        power = self.mel_power(ops.cast(waveforms, "float32"))
        decibels = 10.0 * ops.log10(ops.maximum(power, MIN_POWER))
        peak = ops.max(decibels, axis=(1, 2), keepdims=True)
        return ops.maximum(decibels, peak - self.top_db)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], self.mel_bins, frames)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            mel_bins=self.mel_bins,
            top_db=self.top_db,
            min_freq=self.min_freq,
            max_freq=self.max_freq,
        )
        return config

