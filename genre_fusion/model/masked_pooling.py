"""Pooling over the valid steps of a zero-padded sequence: `masked_mean` and `MaskedMeanMaxPooling`."""

from __future__ import annotations

import keras
from keras import ops


def masked_mean(sequence, mask):
    """float [batch, steps, width] and bool [batch, steps] -> the mean over the valid steps
    [batch, width]; zeros for a row without valid steps."""
    weights = ops.expand_dims(ops.cast(mask, sequence.dtype), -1)
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="genre_fusion")
class MaskedMeanMaxPooling(keras.layers.Layer):
    """The mean and the maximum of each feature over a sequence's valid steps, side by side.

    Inputs: `[sequence, mask]`: float [batch, steps, width] and bool [batch, steps].
    Output: float [batch, 2 * width]: the means, then the maxima; zeros for a row without valid
    steps. What the masked steps hold never reaches the output.
    """

    def call(self, inputs):
        sequence, mask = inputs
        present = ops.any(mask, axis=1, keepdims=True)
        highest = ops.max(ops.where(ops.expand_dims(mask, -1), sequence, float("-inf")), axis=1)
        return ops.concatenate([masked_mean(sequence, mask), ops.where(present, highest, 0.0)], axis=-1)

    def compute_output_shape(self, input_shape):
        sequence_shape, _ = input_shape
        return (sequence_shape[0], 2 * sequence_shape[-1])
