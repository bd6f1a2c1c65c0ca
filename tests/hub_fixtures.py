"""Shared fixtures of the TF Hub tests: local stand-ins with ELMo's interface, built once per session.

A test module uses them with ``pytest_plugins = ["tests.hub_fixtures"]``.

Fixtures: `standins` (the TF1 Hub format stand-in, with reference variables like ELMo v3, and the
TF2 SavedModel one: {"tf1": folder, "tf2": folder}), `standin` (each in turn), `tf1_variation`
(the TF1 stand-in varied in what ELMo's documentation leaves open, each variation in turn), `lyrics`
(texts to embed, one of them empty) and `lyrics_classifier` (a Keras model around a module, run on
`classifier_lyrics`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import pytest

from genre_fusion.encoders.text import HubTextEmbedding
from tests import hub_standins

KINDS = ("tf1", "tf2")
TEXTS = ("love night baby", "", "heart  fire burning slow", "rain")
# The mean over a text's words is defined only for a text that has some.
CLASSIFIER_TEXTS = tuple(text for text in TEXTS if text)
# What ELMo's documentation leaves open (it documents the input as a string tensor [batch] only),
# varied: `hub_standins.build_tf1_standin`'s arguments; unnamed settings keep the builder's defaults.
TF1_VARIATIONS = {
    "key_default_placeholder_text": {"input_key": "default", "placeholder_name": "text"},
    "key_text_placeholder_tokens_input": {"placeholder_name": "tokens_input"},
    "unnamed_placeholder": {"placeholder_name": None},
    # A key that is the name of another signature's placeholder (``tokens``).
    "key_names_another_placeholder": {"input_key": "tokens"},
    "one_signature_one_tag_set": {"tokens_signature": False, "tag_sets": ((),)},
    "train_graph_written_first": {"tag_sets": (("train",), ())},
}


@dataclass(frozen=True)
class TF1Variation:
    """A module folder and every `build_tf1_standin` argument it was built with (but the folder):
    the variation's own, or the builder's default."""

    path: str
    settings: dict[str, Any]


def _classifier(handle: str) -> keras.Model:
    """lyrics string -> HubTextEmbedding -> masked mean over words -> Dense(3)."""
    lyrics = keras.Input(shape=(), dtype="string", name="lyrics")
    vectors = HubTextEmbedding(handle, name="text_encoder")(lyrics)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)  # uses the layer's mask
    keras.utils.set_random_seed(7)
    return keras.Model(lyrics, keras.layers.Dense(3, name="genres")(pooled))


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("standins")
    return {
        "tf1": str(hub_standins.build_tf1_standin(root / "tf1")),
        "tf2": str(hub_standins.build_tf2_standin(root / "tf2")),
    }


@pytest.fixture(params=KINDS)
def standin(request, standins) -> str:
    return standins[request.param]


@pytest.fixture(scope="session")
def tf1_variations(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tf1_variations")
    return {
        name: str(hub_standins.build_tf1_standin(root / name, **settings))
        for name, settings in TF1_VARIATIONS.items()
    }


@pytest.fixture(params=sorted(TF1_VARIATIONS))
def tf1_variation(request, tf1_variations) -> TF1Variation:
    arguments = inspect.signature(hub_standins.build_tf1_standin).parameters.values()
    defaults = {argument.name: argument.default for argument in arguments if argument.name != "directory"}
    return TF1Variation(tf1_variations[request.param], {**defaults, **TF1_VARIATIONS[request.param]})


@pytest.fixture(scope="session")
def lyrics() -> tuple[str, ...]:
    return TEXTS


@pytest.fixture(scope="session")
def classifier_lyrics() -> tuple[str, ...]:
    return CLASSIFIER_TEXTS


@pytest.fixture(scope="session")
def lyrics_classifier() -> Callable[[str], keras.Model]:
    """`lyrics_classifier(handle)`: lyrics string -> HubTextEmbedding -> masked mean over words ->
    Dense(3), seeded."""
    return _classifier
