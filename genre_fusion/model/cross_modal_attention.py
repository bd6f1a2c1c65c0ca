"""`CrossModalAttention`: audio frames attend to lyric tokens and lyric tokens to audio frames."""

from __future__ import annotations

import keras
from keras import ops

from genre_fusion.model.sequence_presence import SequencePresence


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
