"""The TF Hub text encoder, proved on local stand-ins with ELMo's exact interface.

Both stand-ins (TF1 Hub format with reference variables, like ELMo v3; and a TF2 SavedModel) are
loaded through the same path as the real module: `tensorflow_hub.load` on a local folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import saved_model_pb2

from genre_fusion.encoders.signatures import is_tf1_module
from genre_fusion.encoders.text import HubTextEmbedding, HubTextEncoder, TextSignature
from tests import hub_standins

pytest_plugins = ["tests.hub_fixtures"]

WIDTH = hub_standins.DEFAULT_WIDTH


def _words(text: str) -> int:
    return len(text.split())


def _module_rows(path: str, texts: Sequence[str], key: str = "elmo") -> list[np.ndarray]:
    """Each text run through the module's signature alone, unpadded: the reference numbers
    (an empty text gives 0 rows: the stand-in cannot run on a batch of empty strings)."""
    function = hub.load(path).signatures["default"]
    (input_key,) = function.structured_input_signature[1]
    rows = []
    for text in texts:
        if not _words(text):
            rows.append(np.zeros((0, WIDTH), np.float32))
            continue
        output = function(**{input_key: tf.constant([text])})[key].numpy()[0]
        rows.append(output[None] if output.ndim == 1 else output[: _words(text)])
    return rows


def test_standins_load_like_elmo_through_hub_load(standins, monkeypatch):
    loaded = []
    real_load = hub.load
    monkeypatch.setattr(hub, "load", lambda path, *a, **k: loaded.append(path) or real_load(path, *a, **k))
    tf1 = HubTextEncoder(standins["tf1"])
    tf2 = HubTextEncoder(standins["tf2"])
    assert loaded == [standins["tf1"], standins["tf2"]]
    for encoder in (tf1, tf2):
        assert encoder.signature == TextSignature("default", "text", "elmo", False, WIDTH)
    # TF1 Hub format (tfhub_module.pb) with reference variables: invisible to TF2, as with ELMo.
    assert tf1._module._is_hub_module_v1 and not tf1._module.variables
    assert set(tf1._module.signatures) == {"default", "tokens"}
    assert not tf2._module._is_hub_module_v1
    assert all(isinstance(v, tf.Variable) for v in tf2._module.weights.values())
    assert is_tf1_module(standins["tf1"]) and not is_tf1_module(standins["tf2"])


def test_embed_gives_one_row_per_word_and_skips_empty_texts(standin, lyrics):
    encoder = HubTextEncoder(standin, batch_size=2)
    vectors = encoder.embed(lyrics)
    assert [v.shape for v in vectors] == [(_words(t), WIDTH) for t in lyrics]
    assert all(v.dtype == np.float32 for v in vectors)
    assert encoder.calls == 3  # the empty text never reaches the module
    # Rows are the text's own, whatever the batch padding: equal to the text embedded alone.
    for got, want in zip(vectors, _module_rows(standin, lyrics), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_each_text_is_encoded_exactly_once(standins):
    encoder = HubTextEncoder(standins["tf1"], batch_size=8)
    texts = [" ".join(f"w{i}x{j}" for j in range(1 + i % 13)) for i in range(70)] + [""] * 5
    vectors = encoder.embed(texts)
    assert encoder.calls == 70
    assert [len(v) for v in vectors] == [1 + i % 13 for i in range(70)] + [0] * 5


def test_all_empty_texts_never_reach_the_module(standins):
    # The stand-in fails on a batch of empty strings, so this passes only if nothing is sent.
    encoder = HubTextEncoder(standins["tf1"])
    assert [v.shape for v in encoder.embed(["", "", ""])] == [(0, WIDTH)] * 3
    assert encoder.calls == 0


def test_pooled_output_is_a_length_one_sequence(standin, lyrics):
    encoder = HubTextEncoder(standin, output_key="default")
    assert encoder.signature.pooled and encoder.width == WIDTH
    vectors = encoder.embed(lyrics)
    assert [v.shape for v in vectors] == [(1, WIDTH), (0, WIDTH), (1, WIDTH), (1, WIDTH)]
    for got, want in zip(vectors, _module_rows(standin, lyrics, "default"), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_other_output_keys_and_unknown_key(standins):
    encoder = HubTextEncoder(standins["tf1"], output_key="word_emb")
    assert encoder.width == WIDTH // 2
    with pytest.raises(ValueError, match="no output 'elmo_v2'.*lstm_outputs1"):
        HubTextEncoder(standins["tf1"], output_key="elmo_v2")


def test_layer_output_and_mask(standin, lyrics):
    layer = HubTextEmbedding(standin)
    texts = tf.constant(lyrics)
    output = layer(texts)
    longest = max(_words(t) for t in lyrics)
    assert output.shape == (len(lyrics), longest, WIDTH) and output.dtype == tf.float32
    mask = layer.compute_mask(texts)
    expected = np.arange(longest)[None, :] < np.array([_words(t) for t in lyrics])[:, None]
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert layer.compute_output_shape((None,)) == (None, None, WIDTH)
    for row, want in enumerate(_module_rows(standin, lyrics)):
        np.testing.assert_allclose(output.numpy()[row, : len(want)], want, atol=1e-6)


def test_layer_pooled_output_and_all_empty_batch(standins, lyrics):
    pooled = HubTextEmbedding(standins["tf1"], output_key="default")
    texts = tf.constant(lyrics)
    assert pooled(texts).shape == (len(lyrics), 1, WIDTH)
    np.testing.assert_array_equal(pooled.compute_mask(texts).numpy()[:, 0], [True, False, True, True])
    # Only instrumental songs in a request: the module is skipped (the stand-in would fail).
    empty = tf.constant(["", ""])
    sequence = HubTextEmbedding(standins["tf1"])
    assert sequence(empty).shape == (2, 0, WIDTH) and sequence.compute_mask(empty).shape == (2, 0)
    np.testing.assert_array_equal(pooled(empty).numpy(), np.zeros((2, 1, WIDTH)))
    assert not pooled.compute_mask(empty).numpy().any()


def test_layer_config_round_trip(standins):
    layer = HubTextEmbedding(
        standins["tf2"], output_key="lstm_outputs2", name="lyrics_elmo", trainable=False
    )
    config = layer.get_config()
    assert config["handle"] == standins["tf2"] and config["output_key"] == "lstm_outputs2"
    json.dumps(config)
    clone = HubTextEmbedding.from_config(config)
    assert clone.get_config() == config
    assert (clone.name, clone.trainable, clone.signature) == ("lyrics_elmo", False, layer.signature)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, HubTextEmbedding) and restored.get_config() == config


def test_functional_model_saves_as_keras_and_reloads(standin, lyrics_classifier, classifier_lyrics, tmp_path):
    model = lyrics_classifier(standin)
    output = model(tf.constant(classifier_lyrics)).numpy()
    kernel, bias = model.get_layer("genres").get_weights()
    # The mask reached the pooling: the mean is over each text's own words only.
    means = np.stack([rows.mean(axis=0) for rows in _module_rows(standin, classifier_lyrics)])
    np.testing.assert_allclose(output, means @ kernel + bias, atol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.get_layer("text_encoder"), HubTextEmbedding)
    np.testing.assert_allclose(reloaded(tf.constant(classifier_lyrics)).numpy(), output, atol=1e-6)


def test_tf1_standin_varies_what_elmo_leaves_open(tf1_variation):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(tf1_variation.path) / "saved_model.pb").read_bytes())
    graphs = saved_model.meta_graphs
    assert [tuple(graph.meta_info_def.tags) for graph in graphs] == list(tf1_variation.settings["tag_sets"])
    keys = ["default", "tokens"] if tf1_variation.settings["tokens_signature"] else ["default"]
    for graph in graphs:
        signatures = graph.signature_def
        assert sorted(signatures) == keys
        ((key, tensor),) = signatures["default"].inputs.items()
        assert key == tf1_variation.settings["input_key"]
        assert tensor.name == f"{tf1_variation.settings['placeholder_name'] or 'Placeholder'}:0"


def test_tf1_variations_are_tf1_and_embed_like_the_elmo_standin(tf1_variation, standins, lyrics):
    path = tf1_variation.path
    assert is_tf1_module(path)
    encoder = HubTextEncoder(path, batch_size=2)
    input_key = tf1_variation.settings["input_key"]
    assert encoder.signature == TextSignature("default", input_key, "elmo", False, WIDTH)
    # The same weights as the stand-in of the other tests: the same numbers, whatever the names.
    reference = _module_rows(standins["tf1"], lyrics)
    for got, want in zip(encoder.embed(lyrics), reference, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    output = HubTextEmbedding(path)(tf.constant(lyrics)).numpy()
    for row, want in enumerate(reference):
        np.testing.assert_allclose(output[row, : len(want)], want, atol=1e-6)
