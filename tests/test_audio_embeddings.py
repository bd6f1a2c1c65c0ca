"""Shards of a pretrained audio encoder's embeddings, from the example to a trained model.

The shards are written here directly (a few `SongRecord`s through `schema.serialize_song`, meta.json
and the training statistics), without the build or an encoder: songs of 3 genres whose embeddings
show the genre in one dimension's level, beside principal words that say nothing of it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from genre_fusion.data.inputs import MODALITIES, input_names
from genre_fusion.data.pipeline import make_dataset
from genre_fusion.data.schema import FORMAT_VERSION, SongRecord, parse_song, serialize_song
from genre_fusion.data.shards import META_FILE, read_meta
from genre_fusion.data.train_statistics import STATISTICS_FILE, TrainStatistics, read_statistics
from genre_fusion.features.config import LOG_MEL_ENCODER, FeatureConfig
from genre_fusion.model.builder import EMBEDDING_VARIANCE_FLOOR, build_model
from genre_fusion.model.config import ModelConfig, SettingError
from genre_fusion.model.cross_modal_attention import CrossModalAttention
from genre_fusion.model.length_mask import LengthMask
from genre_fusion.model.masked_pooling import MaskedMeanMaxPooling

MADE_BY_81CA561 = Path(__file__).parent / "data" / "made_by_81ca561" / "shards"


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What `FeatureConfig.with_audio_encoder` reads of an encoder's `AudioEncoderSpec`: patches
    of `patch_seconds` every `hop_seconds`."""

    name: str = "test-encoder"
    sample_rate: int = 16_000
    output_key: str = "embedding"
    width: int = 6
    patch_seconds: float = 1.0
    hop_seconds: float = 0.5

    def patches(self, samples: int) -> int:
        patch, hop = (round(seconds * self.sample_rate) for seconds in (self.patch_seconds, self.hop_seconds))
        return 1 + max(samples - patch, 0) // hop


pytest_plugins = ["tests.shard_writing"]
FEATURES = FeatureConfig(clip_seconds=3.0, max_tokens=8).with_audio_encoder(_Spec())
GENRES = ("ambient", "punk", "soul")
SONGS = {"train": 60, "val": 12, "test": 30}
WORDS = np.array("night road fire rain love heart city dream".split())
# Every dimension sits far from 0 and 1, so that a model without the normalisation would see
# another scale; the genre moves dimension GENRE_DIMENSION by 2 standard deviations per genre.
LEVEL, SPREAD = 10.0, 3.0
GENRE_DIMENSION = 2
BATCH = 8
TINY_MODEL = ModelConfig(
    lstm_layers=1,
    lstm_units=4,
    dense_units=16,
    embedding_dim=4,
    vocabulary_size=64,
    dropout=0.1,
    learning_rate=1e-2,
)
VARIANTS = {
    "audio": dict(modalities=("audio",)),
    "concat": dict(fusion="concat"),
    "gated": dict(fusion="gated"),
    "attention": dict(fusion="attention"),
}


def _song(rng: np.random.Generator, split: str, index: int) -> SongRecord:
    genre = index % len(GENRES)
    patches = int(rng.integers(2, FEATURES.audio_patches + 1))  # songs shorter than the clip too
    vectors = rng.normal(LEVEL, SPREAD, (patches, FEATURES.audio_embedding_width))
    vectors[:, GENRE_DIMENSION] += 2 * SPREAD * (genre - 1)
    words = " ".join(rng.choice(WORDS, int(rng.integers(0, FEATURES.max_tokens))))
    seconds = FEATURES.clip_seconds * patches / FEATURES.audio_patches
    return SongRecord(
        f"{split}{index}", f"artist{index}", None, seconds, words, (genre,), audio_embeddings=vectors
    )


@pytest.fixture(scope="module")
def songs() -> dict[str, list[SongRecord]]:
    rng = np.random.default_rng(0)
    return {split: [_song(rng, split, index) for index in range(count)] for split, count in SONGS.items()}


@pytest.fixture(scope="module")
def shards(tmp_path_factory, songs, write_record_shards) -> Path:
    """One shard file per split, meta.json and the training statistics, as `data_prep build` writes them."""
    return write_record_shards(tmp_path_factory.mktemp("embedding_shards"), songs, GENRES, FEATURES)


def _batch(shards: Path, config: ModelConfig) -> dict[str, tf.Tensor]:
    meta = read_meta(shards)
    inputs, _ = next(iter(make_dataset(shards, "train", meta, config.modalities, BATCH, training=False)))
    return inputs


def _model(shards: Path, variant: str, statistics: bool = True) -> tuple[ModelConfig, keras.Model]:
    config = dataclasses.replace(TINY_MODEL, **VARIANTS[variant])
    return config, build_model(config, read_meta(shards), read_statistics(shards) if statistics else None)


# ----------------------------------------------------------------------------- features and shards


def test_with_audio_encoder_fills_in_the_encoders_numbers():
    assert FEATURES.uses_audio_embeddings and FEATURES.sample_rate == 16_000
    assert (FEATURES.audio_encoder, FEATURES.audio_output_key) == ("test-encoder", "embedding")
    assert (FEATURES.audio_embedding_width, FEATURES.audio_patches) == (6, 5)  # 3 s: 1 s patches every 0.5 s
    assert (FEATURES.audio_patch_seconds, FEATURES.audio_hop_seconds) == (1.0, 0.5)
    assert FeatureConfig.from_dict(FEATURES.to_dict()) == FEATURES
    with pytest.raises(ValueError, match="hold no log-mel"):
        FEATURES.log_mel_definition()

    # Before the build has loaded the encoder its numbers are 0; the log-mel settings are unused.
    assert (
        FeatureConfig(audio_encoder="test-encoder", sample_rate=16_000, mel_fmax=11_025.0).audio_patches == 0
    )
    bad = [
        dict(audio_encoder="test-encoder", audio_embedding_width=6),  # width without patches
        dict(
            audio_encoder="test-encoder",
            audio_embedding_width=6,
            audio_patches=5,
            audio_patch_seconds=1.0,
            audio_hop_seconds=-0.5,
        ),
        dict(audio_patches=5),  # a log-mel config has no patches
        dict(audio_encoder=""),
    ]
    for values in bad:
        with pytest.raises(ValueError, match="audio"):
            FeatureConfig(**values)


def test_earlier_features_read_as_log_mel_and_embeddings_shards_describe_no_log_mel(shards):
    earlier = read_meta(MADE_BY_81CA561)
    assert earlier.format_version == 1 and earlier.features.audio_encoder == LOG_MEL_ENCODER
    assert not earlier.features.uses_audio_embeddings

    meta = read_meta(shards)
    assert meta.features == FEATURES and meta.format_version == FORMAT_VERSION == 2
    written = json.loads((shards / META_FILE).read_text())
    assert "log_mel" not in written and written["features"]["audio_patches"] == FEATURES.audio_patches


def test_conv_blocks_are_not_limited_by_the_mel_bins_of_embeddings_shards():
    config = ModelConfig(modalities=("audio",), conv_blocks=9)
    config.check_features(FEATURES)
    with pytest.raises(SettingError, match="conv_blocks must be at most 7"):
        config.check_features(FeatureConfig())


def test_parse_song_round_trips_the_embeddings_zero_padded_to_the_clips_patches():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3, FEATURES.audio_embedding_width)).astype(np.float32)
    song = SongRecord("id1", "artist", None, 1.2, "fire road", (2,), audio_embeddings=vectors)
    serialized = serialize_song(song)
    parsed = parse_song(tf.constant(serialized), FEATURES)

    embeddings = parsed["audio_embeddings"].numpy()
    assert embeddings.shape == (FEATURES.audio_patches, FEATURES.audio_embedding_width)
    assert embeddings.dtype == np.float16
    np.testing.assert_array_equal(embeddings[:3], vectors.astype(np.float16))  # stored as float16
    np.testing.assert_allclose(embeddings[:3], vectors, rtol=1e-3)
    assert not embeddings[3:].any()
    assert parsed["audio_patches"].dtype == tf.int32 and parsed["audio_patches"].numpy() == 3
    assert "log_mel" not in parsed
    assert parsed["words"].numpy() == b"fire road" and parsed["labels"].numpy().tolist() == [2]
    # No log-mel is stored at all: the audio branch reads only the embeddings.
    example = tf.train.Example.FromString(serialized)
    assert example.features.feature["log_mel"].bytes_list.value == [b""]

    with pytest.raises(ValueError, match="log-mel or its audio embeddings"):
        SongRecord("id2", "artist", None, 1.0, "", (0,))


def test_log_mel_songs_are_written_and_read_as_by_format_version_1():
    features = FeatureConfig(clip_seconds=1.0, mel_bins=8)
    log_mel = np.random.default_rng(2).normal(size=(8, features.frames)).astype(np.float16)

    # The example of version 1: none of the audio embeddings' keys.
    earlier = tf.train.Example(
        features=tf.train.Features(
            feature={
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"id3"])),
                "artist": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"artist"])),
                "log_mel": tf.train.Feature(bytes_list=tf.train.BytesList(value=[log_mel.tobytes()])),
                "audio_seconds": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
                "words": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"rain"])),
                "embeddings": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b""])),
                "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
            }
        )
    ).SerializeToString(deterministic=True)
    song = SongRecord("id3", "artist", log_mel, 1.0, "rain", (1,))
    assert serialize_song(song) == earlier

    parsed = parse_song(tf.constant(earlier), features)
    np.testing.assert_array_equal(parsed["log_mel"].numpy(), log_mel)
    assert not {"audio_embeddings", "audio_patches"} & set(parsed)
    np.testing.assert_array_equal(song.audio_features, log_mel)


def test_input_names_pick_the_embeddings_for_the_audio():
    assert input_names(MODALITIES, FEATURES) == ("audio_embeddings", "audio_patches", "words")
    hub_text = dataclasses.replace(FEATURES, text_encoder="elmo", embedding_width=4)
    assert input_names(MODALITIES, hub_text) == ("audio_embeddings", "audio_patches", "embeddings", "tokens")
    assert input_names(("audio",), FeatureConfig()) == ("log_mel",)


def test_pipeline_feeds_float32_embeddings_and_int32_patches(shards, songs):
    inputs = _batch(shards, TINY_MODEL)
    assert sorted(inputs) == ["audio_embeddings", "audio_patches", "words"]
    shape = (BATCH, FEATURES.audio_patches, FEATURES.audio_embedding_width)
    assert (inputs["audio_embeddings"].shape, inputs["audio_embeddings"].dtype) == (shape, tf.float32)
    assert (inputs["audio_patches"].shape, inputs["audio_patches"].dtype) == ((BATCH,), tf.int32)
    first = songs["train"][0].audio_embeddings
    assert inputs["audio_patches"].numpy()[0] == len(first)
    np.testing.assert_array_equal(
        inputs["audio_embeddings"].numpy()[0, : len(first)], first.astype(np.float16)
    )


# ----------------------------------------------------------------------------- statistics


def test_statistics_are_per_embedding_dimension_over_the_valid_patches(shards, songs):
    patches = np.concatenate([song.audio_embeddings for song in songs["train"]])
    statistics = read_statistics(shards)
    np.testing.assert_allclose(statistics.mean, patches.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(statistics.variance, patches.var(axis=0), rtol=1e-4)
    summary = json.loads((shards / STATISTICS_FILE).read_text())
    assert list(summary) == [
        "songs",
        "patches",
        "audio_embeddings_mean",
        "audio_embeddings_variance",
        "distinct_words",
    ]
    assert summary["patches"] == len(patches)


def test_log_mel_statistics_keep_the_files_keys(tmp_path):
    statistics = TrainStatistics()
    statistics.update([np.ones((3, 4))], ["rain"])
    statistics.write(tmp_path)
    earlier = json.loads((MADE_BY_81CA561 / STATISTICS_FILE).read_text())
    assert list(json.loads((tmp_path / STATISTICS_FILE).read_text())) == list(earlier)


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("variant", VARIANTS)
def test_audio_encoder_of_every_variant(shards, variant):
    config, model = _model(shards, variant)
    inputs = _batch(shards, config)
    assert sorted(model.input) == sorted(inputs) == sorted(input_names(config.modalities, FEATURES))

    encoder = model.get_layer("audio_encoder")
    specs = {tensor.name: (tuple(tensor.shape), tensor.dtype) for tensor in encoder.inputs}
    patches, width, units = FEATURES.audio_patches, FEATURES.audio_embedding_width, config.dense_units
    assert specs == {
        "audio_embeddings": ((None, patches, width), "float32"),
        "audio_patches": ((None,), "int32"),
    }
    layers = {layer.name for layer in encoder.layers}
    assert {"audio_embeddings_normalization", "audio_patch_mask"} <= layers
    outputs = [(tuple(tensor.shape), tensor.dtype) for tensor in encoder.outputs]
    if variant == "attention":
        assert outputs == [((None, patches, units), "float32"), ((None, patches), "bool")]
        assert "audio_patches_dense" in layers
    else:
        assert outputs == [((None, units), "float32")]
        assert {"audio_mean_max_pool", "audio_dropout", "audio_dense"} <= layers

    probabilities = model(inputs).numpy()
    assert probabilities.shape == (BATCH, len(GENRES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_patches_beyond_audio_patches_do_not_reach_the_output(shards, variant):
    config, model = _model(shards, variant)
    inputs = _batch(shards, config)
    embeddings, patches = inputs["audio_embeddings"].numpy(), inputs["audio_patches"].numpy()
    padding = np.arange(FEATURES.audio_patches)[None, :] >= patches[:, None]
    assert padding.any(axis=1).sum() >= 2  # songs shorter than the clip are in the batch
    noise = np.random.default_rng(3).normal(0, 100, embeddings.shape).astype(np.float32)
    changed = {**inputs, "audio_embeddings": tf.constant(np.where(padding[..., None], noise, embeddings))}
    np.testing.assert_allclose(model(changed).numpy(), model(inputs).numpy(), atol=1e-6)


@pytest.mark.parametrize("variant", ["audio", "attention"])
def test_the_normalisation_is_the_training_statistics(shards, variant):
    _, normalized = _model(shards, variant)
    _, plain = _model(shards, variant, statistics=False)
    normalized_encoder = normalized.get_layer("audio_encoder")
    plain_encoder = plain.get_layer("audio_encoder")
    for layer in normalized_encoder.layers:
        if layer.weights and not isinstance(layer, keras.layers.Normalization):
            plain_encoder.get_layer(layer.name).set_weights(layer.get_weights())
    inputs = _batch(shards, TINY_MODEL)
    statistics = read_statistics(shards)
    x = {name: inputs[name] for name in ("audio_embeddings", "audio_patches")}
    by_hand = {
        **x,
        "audio_embeddings": (x["audio_embeddings"] - statistics.mean) / np.sqrt(statistics.variance),
    }
    for ours, theirs in zip(normalized_encoder(x), plain_encoder(by_hand), strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.e2e
def test_a_fused_model_learns_the_genres_from_the_embeddings(shards):
    keras.utils.set_random_seed(0)
    meta = read_meta(shards)
    _, model = _model(shards, "concat")
    train = make_dataset(shards, "train", meta, MODALITIES, BATCH, training=True)
    model.fit(train, epochs=15, shuffle=False, verbose=0)
    test = make_dataset(shards, "test", meta, MODALITIES, BATCH, training=False)
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    assert accuracy >= 0.8, f"test accuracy {accuracy:.2f}; chance is {1 / len(GENRES):.2f}"


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["concat", "attention"])
def test_saved_model_reloads_with_identical_predictions(shards, tmp_path, variant):
    config, model = _model(shards, variant)
    train = make_dataset(shards, "train", read_meta(shards), config.modalities, BATCH, training=True)
    # Trained, so that weights and optimizer state both go through the file.
    model.fit(train.take(2), shuffle=False, verbose=0)
    inputs = _batch(shards, config)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


# ----------------------------------------------------------------------------- layers


def test_length_mask_and_masked_mean_max_pooling():
    mask = LengthMask(4)(np.array([2, 0, 9], np.int32)).numpy()
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    sequence = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2) - 10
    pooled = MaskedMeanMaxPooling()([sequence, mask]).numpy()
    np.testing.assert_allclose(pooled[0], [*sequence[0, :2].mean(axis=0), *sequence[0, :2].max(axis=0)])
    np.testing.assert_array_equal(pooled[1], 0.0)  # no valid step
    np.testing.assert_allclose(pooled[2], [*sequence[2].mean(axis=0), *sequence[2].max(axis=0)])
    for layer in (LengthMask(4), MaskedMeanMaxPooling()):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


def test_cross_modal_attention_with_every_audio_frame_valid_is_the_earlier_call():
    layer = CrossModalAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(4)
    audio = rng.normal(size=(2, 6, 8)).astype("float32")
    lyrics = rng.normal(size=(2, 5, 8)).astype("float32")
    lyrics_mask = np.array([[True, True, False, False, False], [True] * 5])
    earlier = layer([audio, lyrics, lyrics_mask]).numpy()
    np.testing.assert_allclose(
        layer([audio, lyrics, lyrics_mask, np.ones((2, 6), bool)]).numpy(), earlier, atol=1e-6
    )


def test_a_dimension_silent_in_training_is_not_blown_up(shards):
    """A dimension with variance 0 over the training patches (a ReLU unit that never fired) keeps a
    floor of the mean variance, so activity there at serving time stays of the others' scale."""
    statistics = read_statistics(shards)
    silent = dataclasses.replace(
        statistics, variance=np.where(np.arange(statistics.variance.size) == 0, 0.0, statistics.variance)
    )
    model = build_model(dataclasses.replace(TINY_MODEL, modalities=("audio",)), read_meta(shards), silent)
    normalization = model.get_layer("audio_encoder").get_layer("audio_embeddings_normalization")
    variance = np.asarray(normalization.variance).reshape(-1)
    assert variance[0] == pytest.approx(EMBEDDING_VARIANCE_FLOOR * np.mean(silent.variance), rel=1e-5)
    np.testing.assert_allclose(variance[1:], statistics.variance[1:], rtol=1e-5)
