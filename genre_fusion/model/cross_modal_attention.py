"""`CrossModalAttention`: audio frames attend to lyric tokens and lyric tokens to audio frames."""

from __future__ import annotations

import keras
from keras import ops

from genre_fusion.model.masked_pooling import masked_mean
from genre_fusion.model.sequence_presence import SequencePresence


@keras.saving.register_keras_serializable(package="genre_fusion")
class CrossModalAttention(keras.layers.Layer):
    """Symmetric cross-modal attention between audio frames and lyric tokens, pooled per song.

    Inputs: `[audio, lyrics, lyrics_mask]` or `[audio, lyrics, lyrics_mask, audio_mask]`: audio
    frames float [batch, frames, audio_width] (the conv feature map as a time sequence, or a
    pretrained encoder's patches), lyric tokens float [batch, tokens, lyrics_width], their mask
    bool [batch, tokens] (all False for a song without lyrics) and, optionally, the audio mask
    bool [batch, frames] (the valid patches of zero-padded embeddings; without it every frame is
    valid).
    Output: float [batch, audio_width + lyrics_width]: the mean over valid frames of
    LayerNorm(audio + attention(audio -> lyrics)) beside the masked mean over tokens of
    LayerNorm(lyrics + attention(lyrics -> valid audio frames)). For a song without lyrics the
    audio frames attend to nothing (their context is zero) and the lyrics half is zero; masked
    audio frames reach neither half.
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
        audio_shape, lyrics_shape = input_shape[:2]
        self.audio_to_lyrics.build(audio_shape, lyrics_shape)
        self.lyrics_to_audio.build(lyrics_shape, audio_shape)
        self.audio_norm.build(audio_shape)
        self.lyrics_norm.build(lyrics_shape)

    def call(self, inputs, training=None):
        audio, lyrics, lyrics_mask, *optional = inputs
        audio_mask = optional[0] if optional else None
        guarded_mask, present = self.presence(lyrics_mask)
        # [batch, query steps, key steps]: every audio frame may look at every valid lyric token.
        audio_context = self.audio_to_lyrics(
            audio, lyrics, attention_mask=ops.expand_dims(guarded_mask, 1), training=training
        )
        audio_out = self.audio_norm(audio + audio_context * ops.expand_dims(present, 1))
        if audio_mask is None:
            frames_mask, audio_mean = None, ops.mean(audio_out, axis=1)
        else:
            # Guarded as the lyrics are: a softmax over no valid frame would be undefined.
            frames_mask = ops.expand_dims(self.presence(audio_mask)[0], 1)
            audio_mean = masked_mean(audio_out, audio_mask)
        lyrics_context = self.lyrics_to_audio(lyrics, audio, attention_mask=frames_mask, training=training)
        lyrics_out = self.lyrics_norm(lyrics + lyrics_context)
        return ops.concatenate([audio_mean, masked_mean(lyrics_out, lyrics_mask)], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        audio_shape, lyrics_shape = input_shape[:2]
        return (audio_shape[0], audio_shape[-1] + lyrics_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "dropout": self.dropout,
        }
