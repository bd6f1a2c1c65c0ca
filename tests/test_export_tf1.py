"""`genre_fusion.export` with a TF1 text encoder whose signature's input key is not its placeholder's
name (ELMo v3 documents neither): shards, one epoch, export, and one song served in a fresh process
with the module folder gone."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genre_fusion import train
from genre_fusion.serving import export
from tests import hub_standins

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e

# Runs in the fresh process, TensorFlow and NumPy only. argv: the SavedModel folder, a .npy waveform
# [samples]. Prints the probabilities as JSON.
SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    waveform = tf.constant(np.load(sys.argv[2])[np.newaxis])
    served = serve(waveform=waveform, lyrics=tf.constant(["fire burning tonight baby"]))
    print(json.dumps(served["probabilities"].numpy().tolist()))
    """
)


def test_export_serves_a_tf1_module_whose_input_key_is_not_its_placeholder_name(
    build_demo_shards, demo_features, tiny_model, tone, tmp_path
):
    module = hub_standins.build_tf1_standin(tmp_path / "module", input_key="default", placeholder_name="text")
    features = dataclasses.replace(demo_features, text_encoder=str(module))
    shards = build_demo_shards(tmp_path / "shards", features)
    hparams = tmp_path / "tiny.json"
    hparams.write_text(json.dumps(tiny_model.to_dict()))
    run, model = tmp_path / "run", tmp_path / "model"
    train_args = ["--data", str(shards), "--run", str(run), "--epochs", "1", "--hparams", str(hparams)]
    assert train.main(train_args) == 0
    assert export.main(["--run", str(run), "--out", str(model)]) == 0
    shutil.rmtree(module)  # the export must hold everything it serves
    waveform = tmp_path / "song.npy"
    np.save(waveform, tone(demo_features.clip_seconds, rate=demo_features.sample_rate))
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(model), str(waveform)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    genres = (model / export.LABELS_FILE).read_text(encoding="utf-8").splitlines()
    assert probabilities.shape == (1, len(genres))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
