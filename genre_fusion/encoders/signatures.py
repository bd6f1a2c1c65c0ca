"""What a loaded module offers: its signatures, and whether it is in a TF1 format.

A TF1 module (TF1 Hub format like ELMo, or a TF1 SavedModel) holds TF1 *reference* variables: a
Keras model that calls it exports, but the SavedModel fails when served ("uninitialized value"),
as nothing restores variables that live inside a function graph. Such a module is frozen to
constants first (`genre_fusion.encoders.freezing`).
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from genre_fusion.encoders.handles import module_path

# The signature that takes raw strings or waveforms. ELMo's other one, "tokens", takes pre-split tokens.
SIGNATURE_KEY = "default"
SIGNATURE_KEYS = (SIGNATURE_KEY, "serving_default")
TF1_HUB_MARKER = "tfhub_module.pb"


def is_tf1_module(handle: str) -> bool:
    """Whether a module is in a TF1 format (TF1 Hub format like ELMo, or a TF1 SavedModel): such a
    module can hold reference variables, so a model that contains it must be exported with the
    module frozen (`genre_fusion.encoders.freezing.freeze_module`)."""
    path = module_path(handle)
    if tf.io.gfile.exists(os.path.join(path, TF1_HUB_MARKER)):
        return True

    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, tf.saved_model.SAVED_MODEL_FILENAME_PB), "rb") as f:
        saved_model.ParseFromString(f.read())
    # TF2 SavedModels carry an object graph; TF1 ones only graphs + signatures.
    return not any(graph.object_graph_def.nodes for graph in saved_model.meta_graphs)


def signature_function(module, handle: str):
    signatures = module.signatures
    for key in SIGNATURE_KEYS:
        if key in signatures:
            return key, signatures[key]
    if len(signatures) == 1:
        return next(iter(signatures.items()))
    raise ValueError(
        f"module {handle!r} has no {SIGNATURE_KEY!r} signature taking strings; its signatures: "
        f"{sorted(signatures)}"
    )

