"""The model, its layers and its input pipeline, on tiny shards (learned and hub text encoders)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from genre_fusion.data.inputs import input_names
from genre_fusion.data.pipeline import make_dataset, steps_per_epoch, training_epochs
from genre_fusion.data.shards import ShardsError, read_meta
from genre_fusion.data.train_statistics import read_statistics
from genre_fusion.model.builder import build_model
from genre_fusion.model.config import ModelConfig, SettingError
from genre_fusion.model.cross_modal_attention import CrossModalAttention
from genre_fusion.model.gated_multimodal_unit import GatedMultimodalUnit
from genre_fusion.model.modality_dropout import ModalityDropout
from genre_fusion.model.sequence_presence import SequencePresence

pytest_plugins = ["tests.training_fixtures"]

BATCH = 8
VARIANTS = {
    "audio": dict(modalities=("audio",)),
    "lyrics": dict(modalities=("lyrics",)),
    "concat": dict(fusion="concat"),
    "gated": dict(fusion="gated"),
    "attention": dict(fusion="attention"),
}
ENCODERS = ("learned", "hub")


@pytest.fixture(params=ENCODERS)
def shards(request):
    return request.getfixturevalue(f"{request.param}_shards")


def _batch(shards, config: ModelConfig):
    """(meta, the training split in batches, its first batch) for `config`'s modalities."""
    meta = read_meta(shards)
    dataset = make_dataset(shards, "train", meta, config.modalities, BATCH, training=False)
    return meta, dataset, next(iter(dataset))


def _without_lyrics(inputs: dict) -> dict:
    inputs = dict(inputs)
    if "words" in inputs:
        inputs["words"] = tf.fill(tf.shape(inputs["words"]), "")
    if "tokens" in inputs:
        inputs["tokens"] = tf.zeros_like(inputs["tokens"])
        inputs["embeddings"] = tf.zeros_like(inputs["embeddings"])
    return inputs


@pytest.mark.e2e
@pytest.mark.parametrize("variant", VARIANTS)
def test_inputs_and_outputs_of_every_variant(shards, tiny_model, variant):
    config = dataclasses.replace(tiny_model, **VARIANTS[variant])
    meta, dataset, (inputs, targets) = _batch(shards, config)
    model = build_model(config, meta, read_statistics(shards))

    uses_embeddings = meta.features.uses_embeddings
    expected = {"audio": ["log_mel"], "lyrics": ["embeddings", "tokens"] if uses_embeddings else ["words"]}
    names = [name for modality in config.modalities for name in expected[modality]]
    assert (
        sorted(model.input)
        == sorted(names)
        == sorted(inputs)
        == sorted(input_names(config.modalities, meta.features))
    )
    features = meta.features
    # name: (model input shape, shape of a batch from the shards, dtype)
    specs = {
        "log_mel": ((None, features.mel_bins, None), (BATCH, features.mel_bins, features.frames), "float32"),
        "words": ((None,), (BATCH,), "string"),
        "embeddings": (
            (None, features.max_tokens, features.embedding_width),
            (BATCH, features.max_tokens, features.embedding_width),
            "float32",
        ),
        "tokens": ((None,), (BATCH,), "int32"),
    }
    for name in names:
        model_shape, batch_shape, dtype = specs[name]
        assert (tuple(model.input[name].shape), model.input[name].dtype) == (model_shape, dtype)
        assert (tuple(inputs[name].shape), inputs[name].dtype.name) == (batch_shape, dtype)

    # Each modality's encoder is a sub-model of its own, named after it, holding its modality's inputs.
    encoders = {layer.name: layer for layer in model.layers if isinstance(layer, keras.Model)}
    assert sorted(encoders) == sorted(f"{modality}_encoder" for modality in config.modalities)
    for modality, encoder in encoders.items():
        assert sorted(tensor.name for tensor in encoder.inputs) == sorted(expected[modality.split("_")[0]])

    probabilities = model(inputs).numpy()
    assert probabilities.shape == targets.shape == (BATCH, len(meta.genres))
    assert model.output.dtype == "float32"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    if "lyrics" in config.modalities:
        empty = model(_without_lyrics(inputs)).numpy()
        assert np.isfinite(empty).all()
        np.testing.assert_allclose(empty.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.e2e
def test_multi_label_head_is_sigmoid_with_binary_loss(multi_label_shards, tiny_model):
    meta, dataset, (inputs, targets) = _batch(multi_label_shards, tiny_model)
    model = build_model(tiny_model, meta, read_statistics(multi_label_shards))
    probabilities = model(inputs).numpy()
    assert probabilities.shape == targets.shape == (BATCH, len(meta.genres))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert not np.allclose(probabilities.sum(axis=1), 1.0)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert sorted(model.evaluate(dataset.take(1), verbose=0, return_dict=True)) == ["auc", "loss"]


@pytest.mark.e2e
def test_mixed_precision_keeps_the_head_float32(learned_shards, tiny_model):
    config = dataclasses.replace(tiny_model, fusion="gated")
    meta, dataset, (inputs, _) = _batch(learned_shards, config)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = build_model(config, meta, read_statistics(learned_shards))
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    assert model.get_layer("audio_encoder").get_layer("conv0").compute_dtype == "float16"
    assert model.get_layer("genres").compute_dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(dataset.take(2), shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    probabilities = model(inputs)
    assert probabilities.dtype == "float32" and np.isfinite(probabilities.numpy()).all()


@pytest.mark.e2e
@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
def test_saved_model_reloads_with_identical_predictions(learned_shards, tiny_model, tmp_path, fusion):
    config = dataclasses.replace(tiny_model, fusion=fusion)
    meta, dataset, (inputs, _) = _batch(learned_shards, config)
    model = build_model(config, meta, read_statistics(learned_shards))
    # Trained, so that weights and optimizer state both go through the file.
    model.fit(dataset.take(2), shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
    assert reloaded.get_layer("lyrics_encoder").get_layer("words_vectorization").get_vocabulary() == (
        model.get_layer("lyrics_encoder").get_layer("words_vectorization").get_vocabulary()
    )


@pytest.mark.e2e
def test_hub_model_reloads_with_identical_predictions(hub_shards, tiny_model, tmp_path):
    meta, dataset, (inputs, _) = _batch(hub_shards, tiny_model)
    model = build_model(tiny_model, meta, read_statistics(hub_shards))
    model.fit(dataset.take(2), shuffle=False, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


@pytest.mark.parametrize(
    "layer",
    [
        ModalityDropout(0.3, seed=7),
        SequencePresence(),
        GatedMultimodalUnit(12),
        CrossModalAttention(num_heads=2, key_dim=4, dropout=0.1),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_modality_dropout_drops_whole_examples_in_training_only():
    mask = np.ones((2000, 5), bool)
    dropped = ModalityDropout(0.25, seed=1)(mask, training=True).numpy()
    assert (dropped.all(axis=1) | ~dropped.any(axis=1)).all()  # a row is kept or dropped whole
    assert 0.2 < 1 - dropped.any(axis=1).mean() < 0.3
    np.testing.assert_array_equal(ModalityDropout(0.25)(mask, training=False).numpy(), mask)


def test_sequence_presence_guards_empty_sequences():
    mask = np.array([[True, True, False], [False, False, False]])
    guarded, present = SequencePresence()(mask)
    np.testing.assert_array_equal(guarded.numpy(), [[True, True, False], [True, False, False]])
    np.testing.assert_array_equal(present.numpy(), [[1.0], [0.0]])


def test_cross_modal_attention_without_lyrics_is_finite_and_lyrics_half_zero():
    layer = CrossModalAttention(num_heads=2, key_dim=4)
    audio = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")
    lyrics = np.random.default_rng(1).normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[True, True, True, False, False], [False] * 5])
    pooled = layer([audio, lyrics, mask]).numpy()
    assert pooled.shape == (2, 16) and np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled[1, 8:], 0.0)
    # Without lyrics the audio half ignores whatever sits in the masked lyric positions.
    noise = np.random.default_rng(2).normal(size=lyrics.shape).astype("float32")
    np.testing.assert_allclose(layer([audio, noise, mask]).numpy()[1], pooled[1], atol=1e-6)


def test_model_config_rejects_bad_settings():
    assert ModelConfig.from_dict({"modalities": "audio", "fusion": "gated"}).modalities == ("audio",)
    assert ModelConfig(modalities=" audio , lyrics").modalities == ("audio", "lyrics")
    assert ModelConfig.from_dict(ModelConfig(lstm_units=7).to_dict()) == ModelConfig(lstm_units=7)
    assert ModelConfig(dropout=0, learning_rate=1).to_dict()["dropout"] == 0.0  # numbers as floats
    with pytest.raises(ValueError, match="unknown model settings"):
        ModelConfig.from_dict({"lstm_unit": 3})
    bad = {
        "modalities": [("video",), ("audio", "audio"), "", 3],
        "fusion": ["sum", 1],
        "dense_units": [0, 16.0, "16", True],
        "vocabulary_size": [2],
        "embedding_dim": [0],
        "dropout": [1.0, -0.1, "0.3", None],
        "learning_rate": [0, -1e-3, float("inf"), float("nan"), "3e-3", False],
    }
    for setting, values in bad.items():
        for value in values:
            with pytest.raises(SettingError, match=f"^{setting} must ") as error:
                ModelConfig(**{setting: value})
            assert error.value.setting == setting
    with pytest.raises(SettingError, match="multiple of 4"):
        ModelConfig(fusion="attention", dense_units=30)


@pytest.mark.e2e
def test_too_many_conv_blocks_for_the_mel_bins(learned_shards, tiny_model):
    with pytest.raises(SettingError, match="conv_blocks must be at most 5"):
        build_model(dataclasses.replace(tiny_model, conv_blocks=6), read_meta(learned_shards))


@pytest.mark.e2e
def test_dataset_yields_one_hot_targets_in_a_seeded_order(learned_shards):
    meta = read_meta(learned_shards)
    songs = meta.split_sizes["train"]

    def targets(seed, training):
        dataset = make_dataset(learned_shards, "train", meta, ("audio",), 5, training=training, seed=seed)
        return np.concatenate([batch_targets.numpy() for _, batch_targets in dataset])

    fixed = targets(0, training=False)
    assert fixed.shape == (songs, len(meta.genres))
    np.testing.assert_array_equal(fixed.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fixed.sum(axis=0), meta.genre_counts["train"])
    np.testing.assert_array_equal(targets(0, training=False), fixed)
    np.testing.assert_array_equal(targets(3, training=True), targets(3, training=True))
    assert not np.array_equal(targets(3, training=True), fixed)


@pytest.mark.e2e
def test_training_order_is_a_function_of_seed_and_epoch(learned_shards):
    meta = read_meta(learned_shards)
    lyrics = ("lyrics",)

    def words(dataset) -> list[bytes]:
        return [bytes(text) for inputs, _ in dataset for text in inputs["words"].numpy()]

    def epoch(number: int) -> list[bytes]:
        dataset = make_dataset(learned_shards, "train", meta, lyrics, 5, training=True, seed=3, epoch=number)
        return words(dataset)

    orders = [epoch(number) for number in range(3)]
    assert len({tuple(order) for order in orders}) == 3  # a new order each epoch
    assert epoch(1) == orders[1]  # the same order for the same (seed, epoch), whatever ran before
    # A run resumed at epoch 1 sees epochs 1 and 2 as the uninterrupted run does.
    resumed = training_epochs(learned_shards, meta, lyrics, 5, seed=3, epochs=3, start_epoch=1)
    assert words(resumed) == orders[1] + orders[2]
    assert resumed.cardinality() == 2 * steps_per_epoch(meta, "train", 5)


@pytest.mark.e2e
def test_dataset_multi_hot_targets(multi_label_shards):
    meta = read_meta(multi_label_shards)
    dataset = make_dataset(multi_label_shards, "train", meta, ("lyrics",), 64, training=False)
    targets = np.concatenate([batch_targets.numpy() for _, batch_targets in dataset])
    assert targets.shape == (meta.split_sizes["train"], len(meta.genres))
    assert set(np.unique(targets)) == {0.0, 1.0} and (targets.sum(axis=1) >= 1).all()
    assert (targets.sum(axis=1) >= 2).any()  # the demo gives about 30 % of songs a second genre
    np.testing.assert_array_equal(targets.sum(axis=0), meta.genre_counts["train"])


@pytest.mark.e2e
def test_dataset_of_an_empty_split_names_the_problem(learned_shards):
    meta = read_meta(learned_shards)
    meta = dataclasses.replace(meta, split_sizes={**meta.split_sizes, "val": 0})
    with pytest.raises(ShardsError, match="val split .* has no songs.*data_prep build"):
        make_dataset(learned_shards, "val", meta, ("audio",), 4, training=False)
