import keras
import numpy as np
import pytest

from genre_fusion.data.shards import ShardsMeta
from genre_fusion.features.config import DEFAULT_SAMPLE_RATE, FeatureConfig
from genre_fusion.features.log_mel import LogMelSpectrogram


def test_shape_matches_the_feature_config_and_config_round_trips(tone):
    features = FeatureConfig(clip_seconds=2.0, mel_bins=64, hop_length=256)
    layer = LogMelSpectrogram.from_features(features)
    waveforms = np.stack([tone(2.0), tone(2.0, 880.0)])

    output = keras.ops.convert_to_numpy(layer(waveforms))

    assert output.shape == (2, features.mel_bins, features.frames)
    restored = LogMelSpectrogram.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(waveforms)), output, atol=1e-5)


def test_values_are_per_song_decibels_independent_of_the_batch(tone):
    layer = LogMelSpectrogram()
    quiet = tone(2.0) * 0.01
    loud = tone(2.0, 3000.0)

    alone = keras.ops.convert_to_numpy(layer(quiet[None]))[0]
    with_loud = keras.ops.convert_to_numpy(layer(np.stack([quiet, loud])))[0]

    np.testing.assert_allclose(alone, with_loud, atol=1e-4)
    assert alone.max() - alone.min() <= 80.0 + 1e-4  # top_db clip per song


def test_a_higher_pitch_peaks_in_a_higher_mel_bin(tone):
    layer = LogMelSpectrogram(sample_rate=DEFAULT_SAMPLE_RATE)
    low, high = keras.ops.convert_to_numpy(layer(np.stack([tone(1.0, 220.0), tone(1.0, 2200.0)])))
    assert low.mean(axis=1).argmax() < high.mean(axis=1).argmax()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"sample_rate": 16_000, "n_fft": 512, "hop_length": 256, "mel_bins": 96},
        {"mel_fmin": 0.0, "mel_fmax": 7000.0, "top_db": 60.0},
    ],
)
def test_log_mel_equals_librosa_with_the_settings_meta_json_records(settings):
    """meta.json's `log_mel` definition is complete: librosa, given those values, computes the same
    features (within 0.1 dB: the mel filters are built in the mel domain rather than in Hz)."""
    librosa = pytest.importorskip("librosa")
    features = FeatureConfig(clip_seconds=2.0, **settings)
    definition = ShardsMeta(genres=("a",), label_mode="single", features=features).to_dict()["log_mel"]
    rate = definition["sample_rate"]
    rng = np.random.default_rng(0)
    t = np.arange(features.clip_samples) / rate
    waveform = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t) * np.exp(-t))
    waveform = (waveform + 0.02 * rng.standard_normal(t.size)).astype(np.float32)

    ours = keras.ops.convert_to_numpy(LogMelSpectrogram.from_features(features)(waveform[None]))[0]
    power = librosa.feature.melspectrogram(
        y=waveform,
        sr=rate,
        n_fft=definition["n_fft"],
        hop_length=definition["hop_length"],
        n_mels=definition["mel_bins"],
        fmin=definition["fmin_hz"],
        fmax=definition["fmax_hz"],
        htk=True,  # "mel_scale": HTK
        norm=None,  # peak-1 triangles
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
    )
    reference = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=definition["top_db"])

    assert ours.shape == reference.shape == (features.mel_bins, definition["frames_per_clip"])
    np.testing.assert_allclose(ours, reference, atol=0.1)


def test_feature_settings_no_stage_can_use_name_their_option():
    with pytest.raises(ValueError, match="--mel-fmin 9000.0 and --mel-fmax 8000.0"):
        FeatureConfig(sample_rate=16_000, mel_fmin=9000.0)
    with pytest.raises(ValueError, match="--top-db"):
        FeatureConfig(top_db=0)
