"""musicnn (Pons & Serra, ISMIR-LBD 2019; ISC licence) in Keras 3, with its published weights.

The weights are the TF1 checkpoints of the ``musicnn`` 0.1.0 package, installed with ``--no-deps``
by ``make install`` for its files only: its code is TF1 (``extractor.py`` disables eager execution
for the whole process) and is never imported. `load_musicnn` reads a checkpoint's variables with
TensorFlow's checkpoint reader, checks them against the architecture, and assigns them by name:
each Keras layer here is named after the TF1 scope its variables were saved under. A load,
conversion included, takes ~0.3 s on a CPU (0.05 s of it reading 9 MB), so nothing is cached.

`Musicnn` is ``models.py``'s ``build_musicnn`` (the models ``MSD_musicnn`` and ``MTT_musicnn``):

- front end: batch norm of the log-mel input; timbral convolutions (7 frames x 38 and x 67 mel
  bins, 204 filters, time padded by 3 on both sides, frequency unpadded) and temporal ones (128,
  64 and 32 frames x 1 bin, 51 filters, TF "same" padding, which pads 63 | 64 frames for 128),
  each ReLU, batch norm, then max over all remaining frequency bins; 561 features per frame.
- mid end: three 1D convolutions (7 frames, 64 filters, "same"), each ReLU then batch norm, the
  second and third with a residual connection; the front end's and the three outputs
  concatenated (dense connections): 753 features per frame.
- back end: max and mean over frames (``max_pool``, ``mean_pool``), flattened interleaved
  (max_0, mean_0, max_1, ...) as TF1 flattened their [753, 2] stack; batch norm, dropout, 200-unit
  ReLU dense, batch norm (``penultimate``), dropout, dense with sigmoid (``taggram``).

TF1's ``tf.layers.conv2d`` over a mid-end input [frames, 561, 1] with a [7, 561] kernel and
"valid" padding after padding 3 frames is a Conv1D with "same" padding; its kernel [7, 561, 1, 64]
loads without the singleton axis. ``tf.layers.batch_normalization`` in inference mode is Keras'
BatchNormalization with the same defaults (last axis, epsilon 1e-3, moving statistics).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from genre_fusion.encoders.handles import ModuleUnavailable
from genre_fusion.encoders.musicnn_log_mel import MEL_BINS, MusicnnLogMelPatches

MUSICNN_PACKAGE = "musicnn"
MUSICNN_VERSION = "0.1.0"
MUSICNN_MODELS = {"musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn"}
CHECKPOINT_CONFIG = "config.json"
OUTPUTS = ("taggram", "penultimate", "mean_pool", "max_pool")
# models.py's build_musicnn: front-end filter counts int(1.6 * 128) and int(1.6 * 32); timbral
# kernels span int(0.4 * 96) and int(0.7 * 96) mel bins.
TIMBRAL_FRAMES = 7
TIMBRAL_WIDTHS = (int(0.4 * MEL_BINS), int(0.7 * MEL_BINS))
TIMBRAL_FILTERS = 204
TEMPORAL_LENGTHS = (128, 64, 32)
TEMPORAL_FILTERS = 51
MIDEND_FRAMES = 7
MIDEND_LAYERS = 3
DROPOUT_RATE = 0.5
BATCH_NORM_EPSILON = 1e-3  # tf.layers.batch_normalization's default
CONV, BATCH_NORM, DENSE = "conv2d", "batch_normalization", "dense"  # TF1's layer scopes
# Adam's slots and power accumulators: saved with the weights, not part of the model.
OPTIMIZER_SUFFIXES = ("/Adam", "/Adam_1")
OPTIMIZER_VARIABLES = ("beta1_power", "beta2_power")


def _scope(kind: str, index: int) -> str:
    """TF1's variable scope of the `index`-th layer of a kind: conv2d, conv2d_1, conv2d_2, ..."""
    return kind if index == 0 else f"{kind}_{index}"


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="genre_fusion")
class Musicnn(keras.layers.Layer):
    """musicnn's network: log-mel patches float32 [batch, patches, frames, 96] (as
    `MusicnnLogMelPatches` makes them; trained on 187 frames) -> a dict of float32, per patch:
    ``taggram`` [batch, patches, classes] (sigmoid tag probabilities), ``penultimate``
    [batch, patches, backend_units], ``mean_pool`` and ``max_pool`` [batch, patches, 753] (the
    mid end's features, mean and max over the patch's frames; 561 + 3 * midend_filters).

    Sublayers are named after their TF1 scopes (``conv2d_5``, ``batch_normalization_9``, ...), in
    the order TF1 numbered them; `checkpoint_variables` lists what a checkpoint must hold.
    """

    def __init__(self, classes: int = 50, midend_filters: int = 64, backend_units: int = 200, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.midend_filters = midend_filters
        self.backend_units = backend_units
        # TF1 numbered the layers of each kind in the order models.py creates them.
        self.input_norm = _batch_norm(_scope(BATCH_NORM, 0))
        self.timbral = [
            (
                keras.layers.Conv2D(
                    TIMBRAL_FILTERS, (TIMBRAL_FRAMES, width), activation="relu", name=_scope(CONV, i)
                ),
                _batch_norm(_scope(BATCH_NORM, 1 + i)),
            )
            for i, width in enumerate(TIMBRAL_WIDTHS)
        ]
        done = len(self.timbral)
        self.temporal = [
            (
                keras.layers.Conv2D(
                    TEMPORAL_FILTERS,
                    (length, 1),
                    padding="same",
                    activation="relu",
                    name=_scope(CONV, done + i),
                ),
                _batch_norm(_scope(BATCH_NORM, 1 + done + i)),
            )
            for i, length in enumerate(TEMPORAL_LENGTHS)
        ]
        done += len(self.temporal)
        self.midend = [
            (
                keras.layers.Conv1D(
                    midend_filters,
                    MIDEND_FRAMES,
                    padding="same",
                    activation="relu",
                    name=_scope(CONV, done + i),
                ),
                _batch_norm(_scope(BATCH_NORM, 1 + done + i)),
            )
            for i in range(MIDEND_LAYERS)
        ]
        done += MIDEND_LAYERS
        self.pool_norm = _batch_norm(_scope(BATCH_NORM, 1 + done))
        self.dropout = keras.layers.Dropout(DROPOUT_RATE)
        self.penultimate = keras.layers.Dense(backend_units, activation="relu", name=_scope(DENSE, 0))
        self.penultimate_norm = _batch_norm(_scope(BATCH_NORM, 2 + done))
        self.tagger = keras.layers.Dense(classes, name=_scope(DENSE, 1))

    @property
    def frontend_width(self) -> int:
        return len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS + len(TEMPORAL_LENGTHS) * TEMPORAL_FILTERS

    @property
    def midend_width(self) -> int:
        return self.frontend_width + MIDEND_LAYERS * self.midend_filters

    def _weighted_layers(self) -> list[keras.layers.Layer]:
        blocks = [layer for block in (*self.timbral, *self.temporal, *self.midend) for layer in block]
        backend = [self.pool_norm, self.penultimate, self.penultimate_norm, self.tagger]
        return [self.input_norm, *blocks, *backend]

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, tuple[int, ...]]]:
        """TF1 variable name -> (the Keras variable it loads into, its shape in the checkpoint)."""
        variables = {}
        for layer in self._weighted_layers():
            for variable in layer.weights:
                shape = tuple(variable.shape)
                if isinstance(layer, keras.layers.Conv1D) and variable is layer.kernel:
                    shape = (shape[0], shape[1], 1, shape[2])  # saved as a Conv2D kernel
                variables[f"{layer.name}/{variable.name}"] = (variable, shape)
        return variables

    def build(self, input_shape):
        mel_bins = input_shape[-1]
        image = (None, None, mel_bins, 1)
        self.input_norm.build(image)
        for conv, norm in (*self.timbral, *self.temporal):
            conv.build(image)
            norm.build((None, None, None, conv.filters))
        width = self.frontend_width
        for conv, norm in self.midend:
            conv.build((None, None, width))
            norm.build((None, None, self.midend_filters))
            width = self.midend_filters
        self.pool_norm.build((None, 2 * self.midend_width))
        self.penultimate.build((None, 2 * self.midend_width))
        self.penultimate_norm.build((None, self.backend_units))
        self.tagger.build((None, self.backend_units))

    def call(self, patches):
        batch, count, frames, mel_bins = ops.shape(patches)
        image = self.input_norm(ops.reshape(patches, (-1, frames, mel_bins, 1)))
        pad = TIMBRAL_FRAMES // 2
        padded = ops.pad(image, ((0, 0), (pad, pad), (0, 0), (0, 0)))
        frontend = [ops.max(norm(conv(padded)), axis=2) for conv, norm in self.timbral]
        frontend += [ops.max(norm(conv(image)), axis=2) for conv, norm in self.temporal]
        stages = [ops.concatenate(frontend, axis=-1)]  # [patches, frames, 561]
        for index, (conv, norm) in enumerate(self.midend):
            output = norm(conv(stages[-1]))
            stages.append(output if index == 0 else output + stages[-1])
        features = ops.concatenate(stages, axis=-1)
        max_pool = ops.max(features, axis=1)
        mean_pool = ops.mean(features, axis=1)
        pooled = ops.reshape(ops.stack([max_pool, mean_pool], axis=-1), (-1, 2 * self.midend_width))
        penultimate = self.penultimate_norm(self.penultimate(self.dropout(self.pool_norm(pooled))))
        taggram = ops.sigmoid(self.tagger(self.dropout(penultimate)))
        outputs = dict(zip(OUTPUTS, (taggram, penultimate, mean_pool, max_pool), strict=True))
        return {key: ops.reshape(value, (batch, count, -1)) for key, value in outputs.items()}

    def compute_output_shape(self, input_shape):
        widths = (self.classes, self.backend_units, self.midend_width, self.midend_width)
        return {key: (*input_shape[:2], width) for key, width in zip(OUTPUTS, widths, strict=True)}

    def get_config(self):
        return {
            **super().get_config(),
            "classes": self.classes,
            "midend_filters": self.midend_filters,
            "backend_units": self.backend_units,
        }


def _not_installed(reason: str) -> ModuleUnavailable:
    return ModuleUnavailable(
        f"musicnn's weights are not available: {reason}. They come with the musicnn "
        f"{MUSICNN_VERSION} package: run `make install`, or "
        f"`pip install --no-deps {MUSICNN_PACKAGE}=={MUSICNN_VERSION}` (--no-deps: it requires "
        "numpy < 1.17, which this project's numpy is not; only its checkpoint files are used)."
    )


def musicnn_checkpoint(name: str) -> str:
    """A model name (a key of `MUSICNN_MODELS`) -> the prefix of its TF1 checkpoint in the
    installed musicnn package. Raises ValueError for an unknown name and `ModuleUnavailable` when
    the package or its checkpoint is missing. The package is located, not imported."""
    if name not in MUSICNN_MODELS:
        raise ValueError(f"unknown musicnn model {name!r}; known: {', '.join(sorted(MUSICNN_MODELS))}")
    spec = importlib.util.find_spec(MUSICNN_PACKAGE)  # a top-level package: its __init__ does not run
    if spec is None or not spec.submodule_search_locations:
        raise _not_installed(f"no {MUSICNN_PACKAGE} package in the Python environment {sys.prefix}")
    folder = Path(spec.submodule_search_locations[0]) / MUSICNN_MODELS[name]
    # musicnn saved each checkpoint with the folder itself as prefix: files ".index", ".data-...".
    prefix = f"{folder}{os.sep}"
    if not tf.io.gfile.exists(f"{prefix}.index"):
        raise _not_installed(f"{folder} holds no checkpoint")
    return prefix


def _is_optimizer_state(name: str) -> bool:
    return name.endswith(OPTIMIZER_SUFFIXES) or name in OPTIMIZER_VARIABLES


def load_musicnn_weights(network: Musicnn, prefix: str) -> None:
    """Assign the TF1 checkpoint at `prefix` to a built `network`, variable by name.

    Raises ValueError naming every variable the architecture needs that the checkpoint lacks,
    every checkpoint variable the architecture has no place for (optimizer state aside), and
    every one whose shape differs; nothing is assigned then."""
    # Not tf.train.load_checkpoint: it takes a prefix that is a folder for a folder to search for a
    # `checkpoint` file, and musicnn's names a path on its author's machine.
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    saved = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    expected = network.checkpoint_variables()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(name for name in set(saved) - set(expected) if not _is_optimizer_state(name))
    misshapen = sorted(
        f"{name} {list(saved[name])} (expected {list(shape)})"
        for name, (_, shape) in expected.items()
        if name in saved and saved[name] != shape
    )
    if missing or unexpected or misshapen:
        problems = "; ".join(
            f"{label}: {', '.join(names)}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("other shape", misshapen))
            if names
        )
        raise ValueError(f"checkpoint {prefix!r} does not match musicnn's architecture: {problems}")
    for name, (variable, _) in expected.items():
        variable.assign(np.reshape(reader.get_tensor(name), variable.shape))


def load_musicnn(name: str) -> keras.Model:
    """``musicnn-msd`` or ``musicnn-mtt`` -> a Keras model with musicnn's weights: waveforms float32
    [batch, samples] (mono, 16 kHz) -> the dict of `Musicnn` (``taggram``, ``penultimate``,
    ``mean_pool``, ``max_pool``: float32 [batch, patches, width], one row per 3 s patch of
    `MusicnnLogMelPatches`). Layers ``log_mel_patches`` and ``musicnn``. Its batch norms follow
    Keras' training flag: set ``trainable = False`` to keep the encoder frozen when training."""
    prefix = musicnn_checkpoint(name)
    with open(f"{prefix}{CHECKPOINT_CONFIG}") as file:
        classes = json.load(file)["num_classes_dataset"]
    waveforms = keras.Input((None,), name="waveforms")
    patches = MusicnnLogMelPatches(name="log_mel_patches")(waveforms)
    network = Musicnn(classes=classes, name="musicnn")
    outputs = network(patches)
    load_musicnn_weights(network, prefix)
    return keras.Model(waveforms, outputs, name=name)
