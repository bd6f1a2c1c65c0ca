"""Layers that join the audio and lyrics branches, and keep a song without lyrics well defined.

A song without lyrics reaches the model as a lyrics sequence whose mask is all False. Recurrent
layers and attention are undefined on such a sequence (cuDNN rejects a zero length, a softmax over
no keys divides by zero), so the lyrics branch runs on `SequencePresence`'s guarded mask and its
result is multiplied by the presence flag: a song without lyrics gets a zero lyrics vector plus a
flag of 0, the same for every such song. `ModalityDropout` removes the lyrics of a fraction of
training songs, so the fused model learns to predict from audio alone.

Fusions (the model concatenates vectors itself for ``concat``):

- `GatedMultimodalUnit`: a learned, per-song gate between the two modality vectors.
- `CrossModalAttention`: audio frames attend to lyric tokens and lyric tokens to audio frames.
"""

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


@keras.saving.register_keras_serializable(package="genre_fusion")
class CrossModalAttention(keras.layers.Layer):
    """Symmetric cross-modal attention between audio frames and lyric tokens, pooled per song.

    Inputs: `[audio, lyrics, lyrics_mask]`: audio frames float [batch, frames, audio_width] (the
    conv feature map as a time sequence), lyric tokens float [batch, tokens, lyrics_width] and
    their mask bool [batch, tokens] (all False for a song without lyrics).
    Output: float [batch, audio_width + lyrics_width]: the mean over frames of
    LayerNorm(audio + attention(audio -> lyrics)) beside the masked mean over tokens of
    LayerNorm(lyrics + attention(lyrics -> audio)). For a song without lyrics the audio frames
    attend to nothing (their context is zero) and the lyrics half is zero.
    """

    def __init__(self, num_heads: int, key_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.presence = SequencePresence(dtype=self.dtype_policy)
        self.audio_to_lyrics = keras.layers.MultiHeadAttention(
            num_heads, key_dim, dropout=dropout, dtype=self.dtype_policy
        )
        self.lyrics_to_audio = keras.layers.MultiHeadAttention(
            num_heads, key_dim, dropout=dropout, dtype=self.dtype_policy
        )
        self.audio_norm = keras.layers.LayerNormalization(dtype=self.dtype_policy)
        self.lyrics_norm = keras.layers.LayerNormalization(dtype=self.dtype_policy)
        # The lyrics mask comes as an input; a mask Keras attaches to the sequences is consumed.
        self.supports_masking = True

    def build(self, input_shape):
        audio_shape, lyrics_shape, _ = input_shape
        self.audio_to_lyrics.build(audio_shape, lyrics_shape)
        self.lyrics_to_audio.build(lyrics_shape, audio_shape)
        self.audio_norm.build(audio_shape)
        self.lyrics_norm.build(lyrics_shape)

    def call(self, inputs, training=None):
        audio, lyrics, lyrics_mask = inputs
        guarded_mask, present = self.presence(lyrics_mask)
        # [batch, query steps, key steps]: every audio frame may look at every valid lyric token.
        audio_context = self.audio_to_lyrics(
            audio, lyrics, attention_mask=ops.expand_dims(guarded_mask, 1), training=training
        )
        audio_out = self.audio_norm(audio + audio_context * ops.expand_dims(present, 1))
        lyrics_context = self.lyrics_to_audio(lyrics, audio, training=training)
        lyrics_out = self.lyrics_norm(lyrics + lyrics_context)
        weights = ops.expand_dims(ops.cast(lyrics_mask, lyrics_out.dtype), -1)
        lyrics_sum = ops.sum(lyrics_out * weights, axis=1)
        lyrics_mean = lyrics_sum / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return ops.concatenate([ops.mean(audio_out, axis=1), lyrics_mean], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        audio_shape, lyrics_shape, _ = input_shape
        return (audio_shape[0], audio_shape[-1] + lyrics_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "dropout": self.dropout,
        }
