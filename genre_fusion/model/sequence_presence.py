"""`SequencePresence`: keeps a song without lyrics well defined.

A song without lyrics reaches the model as a lyrics sequence whose mask is all False. Recurrent
layers and attention are undefined on such a sequence (cuDNN rejects a zero length, a softmax over
no keys divides by zero), so the lyrics branch runs on this layer's guarded mask and its result is
multiplied by the presence flag: a song without lyrics gets a zero lyrics vector plus a flag of 0,
the same for every such song.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="genre_fusion")
class SequencePresence(keras.layers.Layer):
    """A token mask -> (guarded mask, presence flag).

    Input: mask bool [batch, steps], all False for an empty sequence (steps >= 1).
    Outputs: the guarded mask bool [batch, steps], equal to the input except that an empty
    sequence gets its first step unmasked, so recurrent layers and attention always see at least
    one step; and the presence flag [batch, 1] in the compute dtype, 1 where any step is valid.
    Multiply what the guarded sequence yields by the flag to zero out empty sequences.
    """

    def call(self, mask):
        present = ops.any(mask, axis=1, keepdims=True)
        first_step = ops.expand_dims(ops.equal(ops.arange(ops.shape(mask)[1]), 0), 0)
        guarded = ops.logical_or(mask, ops.logical_and(first_step, ops.logical_not(present)))
        return guarded, ops.cast(present, self.compute_dtype)

    def compute_output_spec(self, mask):
        return (
            keras.KerasTensor(mask.shape, dtype="bool"),
            keras.KerasTensor((mask.shape[0], 1), dtype=self.compute_dtype),
        )
