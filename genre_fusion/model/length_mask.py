"""`LengthMask`: the valid steps of zero-padded sequences, from their lengths."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="genre_fusion")
class LengthMask(keras.layers.Layer):
    """Sequence lengths -> a mask of each sequence's first steps.

    Input: lengths int [batch]. Output: bool [batch, steps], True at the first `length` steps of a
    row (every step for a length >= `steps`, none for 0).
    """

    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        self.steps = steps

    def call(self, lengths):
        positions = ops.expand_dims(ops.arange(self.steps, dtype="int32"), 0)
        return ops.less(positions, ops.expand_dims(ops.cast(lengths, "int32"), -1))

    def compute_output_spec(self, lengths):
        return keras.KerasTensor((lengths.shape[0], self.steps), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}
