import keras
import numpy as np

from genre_fusion.features import FeatureConfig
from genre_fusion.log_mel import LogMelSpectrogram
from tests.conftest import SAMPLE_RATE, tone


def test_shape_matches_the_feature_config_and_config_round_trips():
    features = FeatureConfig(clip_seconds=2.0, mel_bins=64, hop_length=256)
    layer = LogMelSpectrogram.from_features(features)
    waveforms = np.stack([tone(2.0), tone(2.0, 880.0)])

    output = keras.ops.convert_to_numpy(layer(waveforms))

    assert output.shape == (2, features.mel_bins, features.frames)
    restored = LogMelSpectrogram.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(waveforms)), output, atol=1e-5)


def test_values_are_per_song_decibels_independent_of_the_batch():
    layer = LogMelSpectrogram()
    quiet = tone(2.0) * 0.01
    loud = tone(2.0, 3000.0)

    alone = keras.ops.convert_to_numpy(layer(quiet[None]))[0]
    with_loud = keras.ops.convert_to_numpy(layer(np.stack([quiet, loud])))[0]

    np.testing.assert_allclose(alone, with_loud, atol=1e-4)
    assert alone.max() - alone.min() <= 80.0 + 1e-4  # top_db clip per song


def test_a_higher_pitch_peaks_in_a_higher_mel_bin():
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE)
    low, high = keras.ops.convert_to_numpy(layer(np.stack([tone(1.0, 220.0), tone(1.0, 2200.0)])))
    assert low.mean(axis=1).argmax() < high.mean(axis=1).argmax()
