"""Each private API of `genre_fusion.compat`, run against the installed packages.

A failure here after an upgrade names the entry to revisit: the private API moved or changed, or
(for the Keras workaround) upstream fixed the bug and the workaround can go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_hub import compressed_module_resolver

from genre_fusion import compat

STRING_MODEL_UNDER_MIRRORED_STRATEGY = textwrap.dedent(
    """
    import sys
    import keras
    import tensorflow as tf
    from genre_fusion.compat import build_for_string_inputs

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        words = keras.Input((), dtype="string", name="words")
        ids = keras.layers.TextVectorization(vocabulary=["a", "b"], output_sequence_length=3)(words)
        vectors = keras.layers.Embedding(4, 2)(ids)
        outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(vectors))
        model = keras.Model(words, outputs)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    targets = [[1.0, 0.0], [0.0, 1.0]] * 2
    data = tf.data.Dataset.from_tensor_slices((["a b", "b a", "a", "b"], targets)).batch(4)
    if sys.argv[1] == "workaround":
        build_for_string_inputs(model, strategy, next(iter(data)))
    model.fit(data, epochs=1, verbose=0)
    print("fitted")
    """
)


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.mark.e2e
def test_string_inputs_under_a_mirrored_strategy_need_the_workaround_and_fit_with_it():
    without = _run_python(STRING_MODEL_UNDER_MIRRORED_STRATEGY, "plain")
    # The bug: averaging a batch of strings over the replicas (AddN has no string kernel).
    assert without.returncode != 0 and "Value for attr 'T' of string is not in the list" in without.stderr, (
        "keras-team/keras#21172 looks fixed in this Keras: drop compat.build_for_string_inputs"
    )
    with_workaround = _run_python(STRING_MODEL_UNDER_MIRRORED_STRATEGY, "workaround")
    assert with_workaround.returncode == 0, with_workaround.stderr[-3000:]
    assert "fitted" in with_workaround.stdout


def test_keras_backup_and_restore_writes_the_files_compat_names(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=2, callbacks=[backup], verbose=0)
    assert (tmp_path / compat.KERAS_BACKUP_WEIGHTS_FILE).is_file()
    record = json.loads((tmp_path / compat.KERAS_BACKUP_METADATA_FILE).read_text())
    assert record["epoch"] == 2  # the epoch a resumed fit() begins with


def test_frozen_functions_take_positional_placeholders_and_return_flat_outputs():
    scale = tf.Variable(3.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="placeholder_of_its_own")])
    def function(x):
        return {"tripled": x * scale, "sum": tf.reduce_sum(x)}

    concrete = function.get_concrete_function()
    frozen = compat.convert_variables_to_constants_v2(concrete)
    assert not frozen.graph.variables
    outputs = frozen(tf.constant([1.0, 2.0]))  # by position: its argument is named after the graph
    assert isinstance(outputs, list) and len(outputs) == 2
    packed = tf.nest.pack_sequence_as(concrete.structured_outputs, outputs, expand_composites=True)
    np.testing.assert_allclose(packed["tripled"], [3.0, 6.0])
    np.testing.assert_allclose(packed["sum"], 3.0)


def test_op_determinism_can_be_read_and_undone():
    before = compat.is_op_determinism_enabled()
    try:
        tf.config.experimental.enable_op_determinism()
        assert compat.is_op_determinism_enabled()
        compat.disable_op_determinism()
        assert not compat.is_op_determinism_enabled()
    finally:
        if before:
            tf.config.experimental.enable_op_determinism()


def test_hub_cache_folder_is_where_tensorflow_hub_caches_a_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    handle = "https://tfhub.dev/google/elmo/3"
    assert compat.hub_cache_folder(handle) == type(compat.hub_cache_folder(handle))(
        compressed_module_resolver._module_dir(handle)
    )
    assert compat.hub_cache_folder(handle).parent == tmp_path


class _NoModel(kt.HyperModel):
    def build(self, hp):
        hp.Int("units", 1, 4)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


@pytest.mark.parametrize("tuner_class", [kt.Hyperband, kt.RandomSearch])
def test_max_trials_and_trial_order_as_the_oracle_keeps_them(tuner_class, tmp_path):
    settings = {"max_epochs": 4} if tuner_class is kt.Hyperband else {"max_trials": 10}
    tuner = tuner_class(_NoModel(), objective="loss", directory=str(tmp_path), project_name="p", **settings)
    compat.set_max_trials(tuner, 2)
    oracle = tuner.oracle
    first, second, third = (oracle.create_trial(f"tuner{index}") for index in range(3))
    assert (first.status, second.status) == (compat.TrialStatus.RUNNING, compat.TrialStatus.RUNNING)
    assert third.status == compat.TrialStatus.STOPPED  # max_trials honoured
    assert compat.started_trial_ids(oracle) == [first.trial_id, second.trial_id]
    second.status = compat.TrialStatus.FAILED
    oracle.end_trial(second)
    assert compat.ended_trial_ids(oracle) == [second.trial_id]
    assert isinstance(oracle.trials[second.trial_id], compat.Trial)
