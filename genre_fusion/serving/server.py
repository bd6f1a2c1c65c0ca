"""The serving graph: raw waveforms and lyrics in, genre probabilities and names out.

`GenreServer` wraps a trained genre model (see `genre_fusion.model.builder`) with the feature code of
preparation -- the same `LogMelSpectrogram` layer or, with a pretrained audio encoder, the layer
that `AudioEncoder.embed` runs (`AudioEncoder.export_layer`: musicnn with its weights, a TF Hub
module frozen to constants when TF1); the same `principal_words_tensor` reduction and, with a hub
text encoder, the same `HubTextEmbedding` -- so a SavedModel of it needs nothing but TensorFlow,
and a song gets the features it would have had in the shards (in float32, where the shards store
float16).

Signatures of the SavedModel (`tf.saved_model.save(server, path, signatures=server.signatures())`):

- ``serving_default``: inputs ``waveform`` float32 [batch, samples], mono at the model's sample
  rate (``features.json``'s; a pretrained audio encoder's own), any length (cut or zero-padded to
  the clip length in the graph, as `decode_audio` does), and ``lyrics`` string [batch], raw
  lyrics text ("" for a song without lyrics). Outputs
  ``probabilities`` float32 [batch, genres] (genres in the order of ``labels.txt``),
  ``top_genres`` string [batch, k] and ``top_probabilities`` float32 [batch, k], most probable
  first (k = `top_k`, at most the number of genres).
- ``features``: the same inputs -> the model inputs of the model's modalities: ``log_mel`` float32
  [batch, mel_bins, frames], or with a pretrained audio encoder ``audio_embeddings`` float32
  [batch, audio_patches, audio_embedding_width] (every patch of the clip) and ``audio_patches``
  int32 [batch] (valid patches, see below); ``words`` string [batch] (learned text encoder), or
  ``embeddings`` float32 [batch, max_tokens, width] (zero past each song's words) and ``tokens``
  int32 [batch] (hub text encoder).
- ``classify``: the model inputs, as ``features`` returns them -> the outputs of
  ``serving_default``.

``serving_default`` is ``classify`` applied to ``features``; the two halves are there to time and
check the stages apart. A model without the lyrics modality ignores ``lyrics``, one without the
audio modality ignores ``waveform``.

With a pretrained audio encoder, the valid patches of a song are those the build keeps: the
patches that cover its audio, 1 to `features.audio_patches` (`valid_patches`). The waveform input
holds no length per song (one [batch, samples] tensor: a client pads the songs of a batch, predict
pads each to the clip), so a song's audio is taken to end at its last nonzero sample: the zero
padding, the client's and the graph's alike, counts as no audio. This equals the build's count
except for a song whose own audio ends in exact digital silence, which then counts fewer patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from genre_fusion.data.inputs import (
    AUDIO_EMBEDDINGS_INPUT,
    AUDIO_PATCHES_INPUT,
    EMBEDDINGS_INPUT,
    LOG_MEL_INPUT,
    TOKENS_INPUT,
    WORDS_INPUT,
    input_names,
)
from genre_fusion.encoders.audio import AudioEncoderSpec
from genre_fusion.encoders.text import HubTextEmbedding
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.log_mel import LogMelSpectrogram
from genre_fusion.features.principal_words import principal_words_tensor
from genre_fusion.serving.layout import (
    CLASSIFY_SIGNATURE,
    FEATURES_SIGNATURE,
    LYRICS,
    PROBABILITIES,
    SERVING_SIGNATURE,
    TOP_GENRES,
    TOP_PROBABILITIES,
    WAVEFORM,
)

DEFAULT_TOP_K = 5


def fit_to_clip(waveforms: tf.Tensor, clip_samples: int) -> tf.Tensor:
    """float32 [batch, samples] -> [batch, clip_samples]: the first `clip_samples` of each
    waveform, zero-padded at the end when shorter (what `decode_audio` does to a file)."""
    waveforms = waveforms[:, :clip_samples]
    padded = tf.pad(waveforms, [[0, 0], [0, clip_samples - tf.shape(waveforms)[1]]])
    return tf.ensure_shape(padded, [None, clip_samples])


def valid_patches(clip: tf.Tensor, spec: AudioEncoderSpec, max_patches: int) -> tf.Tensor:
    """Waveforms float32 [batch, clip_samples], zero-padded -> int32 [batch]: the encoder's patches
    within each song's audio, up to its last nonzero sample, clipped to 1..`max_patches` (as the
    build keeps them: a song shorter than one patch keeps its padded one)."""
    nonzero = tf.not_equal(clip, 0.0)
    from_end = tf.argmax(tf.cast(tf.reverse(nonzero, axis=[1]), tf.int32), axis=1, output_type=tf.int32)
    samples = tf.where(tf.reduce_any(nonzero, axis=1), tf.shape(clip)[1] - from_end, 0)
    # `spec.patches` in tensors; the floor of a negative difference ends below 1, clipped to 1.
    patches = 1 + tf.math.floordiv(samples - spec.first_patch_samples, spec.hop_samples)
    return tf.clip_by_value(patches, 1, max_patches)


def token_embeddings(
    encoder: HubTextEmbedding, words: tf.Tensor, max_tokens: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Principal words string [batch] -> (embeddings float32 [batch, max_tokens, width],
    tokens int32 [batch]), as the shards hold them: a song's rows past its own words are zero and
    `tokens` counts its valid rows (1 for a pooled output, 0 without lyrics)."""
    vectors = encoder(words)
    mask = encoder.compute_mask(words)
    # The module's values at padded positions are its own business; the shards store none there.
    vectors = vectors * tf.cast(mask, vectors.dtype)[:, :, tf.newaxis]
    vectors = vectors[:, :max_tokens]
    vectors = tf.pad(vectors, [[0, 0], [0, max_tokens - tf.shape(vectors)[1]], [0, 0]])
    tokens = tf.minimum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1), max_tokens)
    return tf.ensure_shape(vectors, [None, max_tokens, encoder.width]), tokens


class GenreServer(tf.Module):
    """A trained genre model with its feature computation, ready for `tf.saved_model.save`.

    Args:
        model: the trained Keras model; inputs named as in `genre_fusion.model.builder`, output
            probabilities float32 [batch, genres].
        features: the feature settings of the shards it was trained on.
        genres: the genre names, in the order of the model's output.
        modalities: the model's modalities (`ModelConfig.modalities`).
        text_encoder: with a hub text encoder and the lyrics modality, the `HubTextEmbedding` of
            that module (frozen to constants first if it is a TF1 module); otherwise None.
        audio_encoder: with a pretrained audio encoder and the audio modality, its
            `AudioEncoder.export_layer` (waveforms float32 [batch, clip_samples] -> float32 [batch,
            audio_patches, audio_embedding_width]) and its `AudioEncoderSpec`; otherwise None.
        top_k: genres in ``top_genres`` (capped at the number of genres).
    """

    def __init__(
        self,
        model: keras.Model,
        features: FeatureConfig,
        genres: Sequence[str],
        modalities: Sequence[str],
        text_encoder: HubTextEmbedding | None = None,
        audio_encoder: tuple[keras.layers.Layer, AudioEncoderSpec] | None = None,
        top_k: int = DEFAULT_TOP_K,
    ):
        super().__init__(name="genre_server")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.input_names = input_names(tuple(modalities), features)
        needs_encoder = EMBEDDINGS_INPUT in self.input_names
        if needs_encoder != (text_encoder is not None):
            raise ValueError(
                f"the model's inputs are {self.input_names}: a text encoder is needed exactly when "
                f"they include {EMBEDDINGS_INPUT!r}"
            )
        if needs_encoder and text_encoder.width != features.embedding_width:
            raise ValueError(
                f"text encoder {text_encoder.handle!r} gives vectors of width {text_encoder.width}, "
                f"the model was trained on width {features.embedding_width}"
            )
        needs_audio_encoder = AUDIO_EMBEDDINGS_INPUT in self.input_names
        if needs_audio_encoder != (audio_encoder is not None):
            raise ValueError(
                f"the model's inputs are {self.input_names}: an audio encoder is needed exactly when "
                f"they include {AUDIO_EMBEDDINGS_INPUT!r}"
            )
        self.model = model
        self.features = features
        self.log_mel = (
            LogMelSpectrogram.from_features(features) if LOG_MEL_INPUT in self.input_names else None
        )
        self.text_encoder = text_encoder
        self.audio_encoder, self.audio_spec = audio_encoder or (None, None)
        self.genre_names = tf.constant(list(genres), dtype=tf.string)
        self.top_k = min(top_k, len(genres))
        raw_inputs = [
            tf.TensorSpec([None, None], tf.float32, name=WAVEFORM),
            tf.TensorSpec([None], tf.string, name=LYRICS),
        ]
        self.serve = tf.function(self._serve, input_signature=raw_inputs)
        self.compute_features = tf.function(self._compute_features, input_signature=raw_inputs)
        self.classify = tf.function(self._classify)

    def _compute_features(self, waveform: tf.Tensor, lyrics: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = {}
        features = self.features
        if LOG_MEL_INPUT in self.input_names:
            inputs[LOG_MEL_INPUT] = self.log_mel(fit_to_clip(waveform, features.clip_samples))
        if AUDIO_EMBEDDINGS_INPUT in self.input_names:
            clip = fit_to_clip(waveform, features.clip_samples)
            inputs[AUDIO_EMBEDDINGS_INPUT] = tf.ensure_shape(
                self.audio_encoder(clip), [None, features.audio_patches, features.audio_embedding_width]
            )
            inputs[AUDIO_PATCHES_INPUT] = valid_patches(clip, self.audio_spec, features.audio_patches)
        if WORDS_INPUT in self.input_names or EMBEDDINGS_INPUT in self.input_names:
            words = principal_words_tensor(lyrics, features.max_tokens)
            if self.text_encoder is None:
                inputs[WORDS_INPUT] = words
            else:
                inputs[EMBEDDINGS_INPUT], inputs[TOKENS_INPUT] = token_embeddings(
                    self.text_encoder, words, features.max_tokens
                )
        return inputs

    def _classify(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.model({name: inputs[name] for name in self.input_names}, training=False)
        top = tf.math.top_k(probabilities, k=self.top_k)
        return {
            PROBABILITIES: probabilities,
            TOP_GENRES: tf.gather(self.genre_names, top.indices),
            TOP_PROBABILITIES: top.values,
        }

    def _serve(self, waveform: tf.Tensor, lyrics: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._classify(**self._compute_features(waveform, lyrics))

    def feature_specs(self) -> dict[str, tf.TensorSpec]:
        """The model inputs as ``classify`` takes them: name -> spec with a free batch size."""
        features = self.features
        shapes = {
            LOG_MEL_INPUT: ([None, features.mel_bins, features.frames], tf.float32),
            AUDIO_EMBEDDINGS_INPUT: (
                [None, features.audio_patches, features.audio_embedding_width],
                tf.float32,
            ),
            AUDIO_PATCHES_INPUT: ([None], tf.int32),
            WORDS_INPUT: ([None], tf.string),
            EMBEDDINGS_INPUT: ([None, features.max_tokens, features.embedding_width], tf.float32),
            TOKENS_INPUT: ([None], tf.int32),
        }
        return {name: tf.TensorSpec(*shapes[name], name=name) for name in self.input_names}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The concrete functions to save, keyed by signature name (see the module docstring)."""
        return {
            SERVING_SIGNATURE: self.serve.get_concrete_function(),
            FEATURES_SIGNATURE: self.compute_features.get_concrete_function(),
            CLASSIFY_SIGNATURE: self.classify.get_concrete_function(**self.feature_specs()),
        }
