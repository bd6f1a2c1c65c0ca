"""Freezing a TF1 Hub module (reference variables, like ELMo v3): the frozen copy gives every output
the original gives, and only a frozen module exported inside a model serves in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from genre_fusion.encoders.cli import main as encoders_cli
from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import load_module
from genre_fusion.encoders.signatures import is_tf1_module
from genre_fusion.encoders.text import HubTextEmbedding, HubTextEncoder, TextSignature
from tests import hub_standins

pytest_plugins = ["tests.hub_fixtures"]
# Each test writes a SavedModel: a frozen module, or an export served in a fresh process.
pytestmark = pytest.mark.e2e

WIDTH = hub_standins.DEFAULT_WIDTH
# A frozen module is the same graph with variables turned into constants; Grappler may fold and
# reorder float ops differently, so equal means equal to float32 rounding.
FROZEN_ATOL = 1e-5
# The same SavedModel graph served in another process: equal up to float32 summation order.
SERVED_ATOL = 1e-6


SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            loaded = tf.saved_model.load(path)  # kept: its variables die with it
            served = loaded.serve(tf.constant(json.loads(sys.argv[2])))
            results[name] = {"output": served.numpy().tolist()}
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {err}"}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def served_exports(standins, lyrics_classifier, classifier_lyrics, tmp_path_factory):
    """Export the classifier with the TF1 stand-in inside as is and frozen first, and with the TF2
    stand-in as is. Serve all three in one fresh process after every module folder is gone.
    Returns (in-process outputs, served outputs or errors), keyed "unfrozen", "frozen", "tf2"."""
    root = tmp_path_factory.mktemp("exports")
    module = shutil.copytree(standins["tf1"], root / "tf1_module")
    frozen = freeze_module(str(module), root / "tf1_frozen")
    tf2 = shutil.copytree(standins["tf2"], root / "tf2_module")
    exports, in_process = {}, {}
    for name, handle in (("unfrozen", module), ("frozen", frozen), ("tf2", tf2)):
        model = lyrics_classifier(str(handle))
        in_process[name] = model(tf.constant(classifier_lyrics)).numpy()
        exports[name] = str(root / f"export_{name}")
        model.export(exports[name], verbose=False)
    for folder in (module, frozen, tf2):
        shutil.rmtree(folder)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, json.dumps(exports), json.dumps(classifier_lyrics)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return in_process, json.loads(result.stdout.strip().splitlines()[-1])


def test_frozen_tf1_module_exports_and_serves_in_a_fresh_process(served_exports):
    in_process, served = served_exports
    assert "output" in served["frozen"], served["frozen"]
    np.testing.assert_allclose(np.array(served["frozen"]["output"]), in_process["frozen"], atol=SERVED_ATOL)
    # Freezing changed nothing but the variables' kind.
    np.testing.assert_allclose(in_process["frozen"], in_process["unfrozen"], atol=FROZEN_ATOL)


def test_tf2_module_exports_and_serves_without_freezing(served_exports):
    in_process, served = served_exports
    assert "output" in served["tf2"], served["tf2"]
    np.testing.assert_allclose(np.array(served["tf2"]["output"]), in_process["tf2"], atol=SERVED_ATOL)


def test_unfrozen_tf1_module_exports_but_fails_when_served(served_exports):
    _, served = served_exports
    assert "uninitialized value" in served["unfrozen"].get("error", ""), served["unfrozen"]


def test_frozen_module_matches_the_original_on_every_output(standins, lyrics, tmp_path):
    frozen = freeze_module(standins["tf1"], tmp_path / "frozen")
    assert not is_tf1_module(str(frozen))
    original, copy = (
        hub.load(standins["tf1"]).signatures["default"],
        hub.load(str(frozen)).signatures["default"],
    )
    assert copy.structured_input_signature == original.structured_input_signature
    texts = tf.constant(lyrics)
    want, got = original(text=texts), copy(text=texts)
    assert sorted(got) == sorted(want) == sorted(hub_standins.OUTPUT_KEYS)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=FROZEN_ATOL)
    encoder = HubTextEncoder(str(frozen))
    assert encoder.signature == TextSignature("default", "text", "elmo", False, WIDTH)


def test_freeze_cli(standins, tmp_path, capsys):
    out = tmp_path / "elmo_frozen"
    assert encoders_cli(["freeze", standins["tf1"], str(out), "--output-key", "elmo"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "TF1" in printed and "input 'text'" in printed
    assert (out / "saved_model.pb").exists()
    assert list(hub.load(str(out)).signatures["default"].structured_outputs) == ["elmo"]
    assert encoders_cli(["freeze", standins["tf2"], str(tmp_path / "tf2_frozen")]) == 0
    assert "TF2 format" in capsys.readouterr().out
    assert encoders_cli(["freeze", standins["tf1"], str(out)]) == 2  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err
    assert encoders_cli(["freeze", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_freezing_keeps_the_input_key_and_every_output_whatever_the_placeholder(
    tf1_variation, lyrics, tmp_path
):
    path = tf1_variation.path
    frozen = str(freeze_module(path, tmp_path / "frozen"))
    assert not is_tf1_module(frozen)
    original = load_module(path).signatures["default"]
    copy = load_module(frozen).signatures["default"]
    assert copy.structured_input_signature == original.structured_input_signature
    texts = {tf1_variation.settings["input_key"]: tf.constant(lyrics)}
    want, got = original(**texts), copy(**texts)
    assert sorted(got) == sorted(want) == sorted(hub_standins.OUTPUT_KEYS)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=FROZEN_ATOL, err_msg=key)
    # What an export serves: the layer on the frozen module, as the layer on the original.
    served, unfrozen = (HubTextEmbedding(handle)(tf.constant(lyrics)).numpy() for handle in (frozen, path))
    np.testing.assert_allclose(served, unfrozen, atol=FROZEN_ATOL)
