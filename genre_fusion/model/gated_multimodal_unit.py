"""`GatedMultimodalUnit`: a learned, per-song gate between the two modality vectors
(Arevalo et al., 2017)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="genre_fusion")
class GatedMultimodalUnit(keras.layers.Layer):
    """Gated multimodal unit (Arevalo et al., 2017) of two modality vectors.

    Inputs: `[audio, lyrics]`, float [batch, audio_width] and [batch, lyrics_width].
    Output: float [batch, units] = z * tanh(W_a audio) + (1 - z) * tanh(W_l lyrics), with the
    gate z = sigmoid(W_z [audio; lyrics]) chosen per song and per unit.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.audio_projection = keras.layers.Dense(units, activation="tanh", dtype=self.dtype_policy)
        self.lyrics_projection = keras.layers.Dense(units, activation="tanh", dtype=self.dtype_policy)
        self.gate = keras.layers.Dense(units, activation="sigmoid", dtype=self.dtype_policy)

    def build(self, input_shape):
        audio_shape, lyrics_shape = input_shape
        self.audio_projection.build(audio_shape)
        self.lyrics_projection.build(lyrics_shape)
        self.gate.build((audio_shape[0], audio_shape[-1] + lyrics_shape[-1]))

    def call(self, inputs):
        audio, lyrics = inputs
        gate = self.gate(ops.concatenate([audio, lyrics], axis=-1))
        return gate * self.audio_projection(audio) + (1.0 - gate) * self.lyrics_projection(lyrics)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
