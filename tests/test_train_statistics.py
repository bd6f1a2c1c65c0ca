"""Statistics counted at build time equal what Keras would adapt to at training time."""

from __future__ import annotations

import keras
import numpy as np

from genre_fusion.data.train_statistics import TrainStatistics, read_statistics


def _songs(rng, count=7, mel_bins=5):
    """`count` log-mels [mel_bins, 3..8 frames], each bin with its own level."""
    levels = -40 + 3 * np.arange(mel_bins)[:, None]
    return [rng.normal(levels, 4, (mel_bins, int(rng.integers(3, 9)))) for _ in range(count)]


def test_log_mel_statistics_match_keras_normalization_adapt():
    rng = np.random.default_rng(0)
    songs = [song[:, :6] for song in _songs(rng) if song.shape[1] >= 6]
    statistics = TrainStatistics()
    statistics.update(songs, [""] * len(songs))

    layer = keras.layers.Normalization(axis=1)
    layer.adapt(np.stack(songs).astype(np.float32))

    np.testing.assert_allclose(statistics.mean, np.ravel(layer.mean), rtol=1e-5)
    np.testing.assert_allclose(statistics.variance, np.ravel(layer.variance), rtol=1e-4)
    assert statistics.songs == len(songs) and statistics.frames == 6 * len(songs)


def test_vocabulary_is_the_most_frequent_words_with_room_for_padding_and_oov():
    texts = ["love love night", "love fire night", "", "rain"]
    statistics = TrainStatistics()
    statistics.update([], texts)
    assert statistics.ranked_words() == [("love", 3), ("night", 2), ("fire", 1), ("rain", 1)]
    assert statistics.summary().vocabulary(4) == ["love", "night"]

    layer = keras.layers.TextVectorization(max_tokens=4, standardize=None, split="whitespace")
    layer.adapt(texts)
    assert layer.get_vocabulary()[2:] == statistics.summary().vocabulary(4)


def test_parts_merged_in_order_equal_one_pass_and_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(1)
    songs = _songs(rng, 10)
    texts = [f"word{i % 3} other{i}" for i in range(10)]
    whole = TrainStatistics()
    whole.update(songs, texts)
    merged = TrainStatistics()
    for start in (0, 4, 8):
        part = TrainStatistics()
        part.update(songs[start : start + 4], texts[start : start + 4])
        merged.merge(TrainStatistics.from_dict(part.to_dict()))
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.variance, whole.variance, rtol=1e-9)
    assert merged.ranked_words() == whole.ranked_words()

    merged.write(tmp_path)
    loaded = read_statistics(tmp_path)
    np.testing.assert_allclose(loaded.mean, whole.mean, rtol=1e-6)
    assert loaded.vocabulary(5) == [word for word, _ in whole.ranked_words()[:3]]


def test_shards_without_statistics_read_as_none(tmp_path):
    assert read_statistics(tmp_path) is None
