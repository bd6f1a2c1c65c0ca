"""`ModalityDropout`: hides the lyrics of a fraction of training songs, so that the fused model
learns to predict from audio alone."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="genre_fusion")
class ModalityDropout(keras.layers.Layer):
    """Drops a whole modality for a random fraction `rate` of the examples, in training only.

    Input: a mask bool [batch, ...] marking where the modality is present (e.g. the valid lyric
    tokens). Output: the same mask, all False for the dropped examples. Outside training the input
    comes back unchanged.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mask, training=None):
        if not training or self.rate == 0.0:
            return mask
        keep_shape = (ops.shape(mask)[0],) + (1,) * (len(mask.shape) - 1)
        keep = keras.random.uniform(keep_shape, seed=self.seed_generator) >= self.rate
        return ops.logical_and(mask, keep)

    def compute_output_spec(self, mask, training=None):
        return keras.KerasTensor(mask.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
