"""Every private or undocumented API of the project's dependencies that the project relies on.

Each entry says what it relies on, where upstream defines it and the issue that explains it; all
were checked on `CHECKED_ON`. ``tests/test_compat.py`` runs each one against the installed
packages and fails, naming the entry, when an upgrade changes what it relies on: update the entry
(or drop it, when upstream fixed the cause) before anything else.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import keras_tuner as kt
import tensorflow as tf
from keras_tuner.engine.trial import Trial, TrialStatus
from tensorflow.python.framework import config as tf_framework_config
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow_hub import resolver as hub_resolver

CHECKED_ON = {"tensorflow": "2.21.0", "keras": "3.15.1", "tensorflow_hub": "0.16.1", "keras_tuner": "1.4.8"}

__all__ = [
    "CHECKED_ON",
    "KERAS_BACKUP_METADATA_FILE",
    "KERAS_BACKUP_WEIGHTS_FILE",
    "Trial",
    "TrialStatus",
    "build_for_string_inputs",
    "convert_variables_to_constants_v2",
    "disable_op_determinism",
    "ended_trial_ids",
    "hub_cache_folder",
    "is_op_determinism_enabled",
    "set_max_trials",
    "started_trial_ids",
]


# Keras: string inputs under a multi-replica strategy (keras-team/keras#21172). fit() and evaluate()
# first average a batch over the replicas to build the model (`Trainer._maybe_symbolic_build`,
# keras/src/trainers/trainer.py), and strings have no addition (AddN), so they fail.
def build_for_string_inputs(model: keras.Model, strategy: tf.distribute.Strategy, batch) -> None:
    """Build the loss, metrics and optimizer of an already built `model` from one local `batch`,
    as that step would, and skip the step."""
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None


# Keras: the files of a `BackupAndRestore` backup (keras/src/callbacks/backup_and_restore.py,
# undocumented). Runs of versions before the project's own backup hold one: its metadata file
# ({"epoch": N, ...}) and its weights, which the project's backup names in its own metadata.
KERAS_BACKUP_METADATA_FILE = "training_metadata.json"
KERAS_BACKUP_WEIGHTS_FILE = "latest.weights.h5"


# TensorFlow: freezing a tf.function's variables into constants. The public
# `tf.compat.v1.graph_util.convert_variables_to_constants` needs a TF1 session; the TF2 version is
# only in tensorflow/python/framework/convert_to_constants.py. Its frozen function takes its
# arguments by position, named after the graph's placeholders, and returns `function.outputs`
# flat: callers pack them back (`genre_fusion.encoders.freezing`).
# (imported above: `convert_variables_to_constants_v2`)


# TensorFlow: reading and undoing op determinism. Only `tf.config.experimental.enable_op_determinism`
# is public; tensorflow/python/framework/config.py holds the other two.
def is_op_determinism_enabled() -> bool:
    return tf_framework_config.is_op_determinism_enabled()


def disable_op_determinism() -> None:
    tf_framework_config.disable_op_determinism()


# TF Hub: where it caches a URL handle. Undocumented: `compressed_module_resolver._module_dir`
# names the folder by the SHA-1 of the handle under `resolver.tfhub_cache_dir(use_temp=True)`.
def hub_cache_folder(handle: str) -> Path | None:
    """The folder where tensorflow_hub caches `handle`; None when it caches nothing."""
    cache_dir = hub_resolver.tfhub_cache_dir(use_temp=True)
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(handle.encode("utf8")).hexdigest()


# Keras Tuner: `HyperbandOracle` takes no `max_trials` argument, but `Oracle.create_trial` honours
# the attribute (keras_tuner/src/engine/oracle.py).
def set_max_trials(tuner: kt.Tuner, max_trials: int) -> None:
    tuner.oracle.max_trials = max_trials


# Keras Tuner: the order trials started and ended in (`Oracle.start_order`, `Oracle.end_order`,
# undocumented), which `Oracle._check_consecutive_failures` reads to stop a search.
def started_trial_ids(oracle: kt.Oracle) -> list[str]:
    return list(oracle.start_order)


def ended_trial_ids(oracle: kt.Oracle) -> list[str]:
    return list(oracle.end_order)
