"""The genre model: an audio branch and a lyrics branch, fused, with a softmax (or sigmoid) head.

`build_model(config, meta, statistics)` is the one builder shared by training and tuning. Each
modality's encoder is a named sub-model (``audio_encoder``, ``lyrics_encoder``), called on the
model's inputs, then fused:

- Audio: log-mel [batch, mel_bins, frames] -> per-mel-bin normalisation -> `conv_blocks` blocks of
  Conv2D 3x3, batch norm, ReLU, 2x2 max pooling (filters `conv_filters`, doubling per block), read
  with time first so that the final feature map is also a sequence of audio frames -> global
  average pooling -> dense. Or, for shards of a pretrained audio encoder, its cached embeddings
  [batch, audio_patches, width] -> per-dimension normalisation -> mean and max over the valid
  patches (`audio_patches`), side by side -> dense; for attention fusion, dense per patch.
- Lyrics: token vectors (the learned encoder: `TextVectorization` over the training split's most
  frequent words and a trainable embedding; or the cached hub embeddings) -> token mask (modality dropout in
  training) -> `lstm_layers` stacked LSTMs -> mean over the valid tokens -> dense, zeroed for a
  song without lyrics, beside a has-lyrics flag (`SequencePresence`).
- Fusion: ``concat`` (the proposal: concatenation into dense layers), ``gated`` (gated multimodal
  unit) or ``attention`` (symmetric cross-modal attention between the audio frames and the LSTM
  outputs per token, or the valid embedding patches, instead of the two poolings), then dense ->
  head. Only the branches of `modalities` are built.

Inputs by name, as `genre_fusion.data.inputs` lists them. Output: genre probabilities float32
[batch, genres], softmax for ``single`` label mode, sigmoid for ``multi``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from genre_fusion.data.inputs import (
    AUDIO,
    AUDIO_EMBEDDINGS_INPUT,
    AUDIO_PATCHES_INPUT,
    EMBEDDINGS_INPUT,
    LOG_MEL_INPUT,
    LYRICS,
    TOKENS_INPUT,
    WORDS_INPUT,
)
from genre_fusion.data.shards import ShardsMeta
from genre_fusion.data.train_statistics import ShardStatistics
from genre_fusion.features.config import FeatureConfig
from genre_fusion.model.config import ATTENTION_HEADS, POOL_SIZE, ModelConfig
from genre_fusion.model.cross_modal_attention import CrossModalAttention
from genre_fusion.model.gated_multimodal_unit import GatedMultimodalUnit
from genre_fusion.model.length_mask import LengthMask
from genre_fusion.model.masked_pooling import MaskedMeanMaxPooling
from genre_fusion.model.modality_dropout import ModalityDropout
from genre_fusion.model.sequence_presence import SequencePresence

OUTPUT_NAME = "genres"
AUDIO_ENCODER = "audio_encoder"
LYRICS_ENCODER = "lyrics_encoder"
KERNEL_SIZE = 3
TOP_K = 3
# Keras' default 0.99 leaves the moving statistics of a small training split (a few hundred
# steps in all) far from the batch statistics, and inference far from training.
BATCH_NORM_MOMENTUM = 0.9
# A ReLU embedding dimension that is zero on every training song has variance 0: divided by
# Keras' epsilon, any activity in it at serving time would swamp the others. Its variance is
# raised to this fraction of the mean variance instead.
EMBEDDING_VARIANCE_FLOOR = 1e-2
# The layers of the project that a saved model names; `keras.models.load_model` needs them.
CUSTOM_LAYERS = {
    keras.saving.get_registered_name(layer): layer
    for layer in (
        ModalityDropout,
        SequencePresence,
        GatedMultimodalUnit,
        CrossModalAttention,
        LengthMask,
        MaskedMeanMaxPooling,
    )
}


@dataclass(frozen=True)
class _Branch:
    """What an encoder hands to the fusion: a vector [batch, width] per song, or for attention a
    sequence [batch, steps, dense_units] and, where some steps are padding, their mask bool [batch,
    steps] (the lyrics' tokens, a pretrained audio encoder's patches); the lyrics encoder adds its
    has-lyrics flag [batch, 1]."""

    vector: keras.KerasTensor | None = None
    sequence: keras.KerasTensor | None = None
    mask: keras.KerasTensor | None = None
    present: keras.KerasTensor | None = None


def _audio_normalization(
    axis: int, statistics: ShardStatistics | None, name: str, variance_floor: float = 0.0
) -> keras.layers.Layer:
    """Per audio dimension on `axis`, by the training split's statistics (the identity without
    them); float32 whatever the policy (dB values, or embeddings of any scale). A variance below
    `variance_floor` times the mean variance is raised to it."""
    variance = None if statistics is None else statistics.variance
    if variance is not None and variance_floor:
        variance = np.maximum(variance, variance_floor * float(np.mean(variance)))
    return keras.layers.Normalization(
        axis=axis,
        mean=None if statistics is None else statistics.mean,
        variance=variance,
        dtype="float32",
        name=name,
    )


def audio_encoder(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None
) -> keras.Model:
    """The audio encoder of the shards' audio features: `_log_mel_encoder`, or for the shards of a
    pretrained audio encoder `_audio_embeddings_encoder`."""
    if features.uses_audio_embeddings:
        return _audio_embeddings_encoder(config, features, statistics)
    return _log_mel_encoder(config, features, statistics)


def _log_mel_encoder(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None
) -> keras.Model:
    """Log-mel float32 [batch, mel_bins, frames] -> a vector [batch, dense_units], or for attention
    fusion a sequence of frames [batch, steps, dense_units]."""
    log_mel = keras.Input((features.mel_bins, None), name=LOG_MEL_INPUT, dtype="float32")
    x = _audio_normalization(1, statistics, "log_mel_normalization")(log_mel)
    # Time first: [batch, frames, mel_bins, 1], so the last feature map is a sequence of frames.
    x = keras.layers.Permute((2, 1), name="frames_first")(x)
    x = keras.layers.Reshape((-1, features.mel_bins, 1), name="add_channel")(x)
    for block in range(config.conv_blocks):
        x = keras.layers.Conv2D(
            config.conv_filters * 2**block, KERNEL_SIZE, padding="same", use_bias=False, name=f"conv{block}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"conv{block}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{block}_relu")(x)
        x = keras.layers.MaxPooling2D(POOL_SIZE, padding="same", name=f"conv{block}_pool")(x)

    if config.fusion == "attention" and config.fused:
        _, _, bins, channels = x.shape
        frames = keras.layers.Reshape((-1, bins * channels), name="audio_frames")(x)
        frames = keras.layers.Dense(config.dense_units, activation="relu", name="audio_frames_dense")(frames)
        return keras.Model(log_mel, frames, name=AUDIO_ENCODER)
    pooled = keras.layers.GlobalAveragePooling2D(name="audio_pool")(x)
    pooled = keras.layers.Dropout(config.dropout, name="audio_dropout")(pooled)
    vector = keras.layers.Dense(config.dense_units, activation="relu", name="audio_dense")(pooled)
    return keras.Model(log_mel, vector, name=AUDIO_ENCODER)


def _audio_embeddings_encoder(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None
) -> keras.Model:
    """A pretrained encoder's cached embeddings float32 [batch, audio_patches, width] and their
    valid patches int32 [batch] -> a vector [batch, dense_units]; for attention fusion the patches
    [batch, audio_patches, dense_units] and their mask bool [batch, audio_patches]."""
    embeddings = keras.Input(
        (features.audio_patches, features.audio_embedding_width), name=AUDIO_EMBEDDINGS_INPUT, dtype="float32"
    )
    patches = keras.Input((), name=AUDIO_PATCHES_INPUT, dtype="int32")
    inputs = {AUDIO_EMBEDDINGS_INPUT: embeddings, AUDIO_PATCHES_INPUT: patches}
    x = _audio_normalization(
        -1, statistics, "audio_embeddings_normalization", EMBEDDING_VARIANCE_FLOOR
    )(embeddings)
    # The rows beyond a song's patches are parse_song's zero-padding: neither pooling nor attention sees them.
    mask = LengthMask(features.audio_patches, name="audio_patch_mask")(patches)

    if config.fusion == "attention" and config.fused:
        sequence = keras.layers.Dense(config.dense_units, activation="relu", name="audio_patches_dense")(x)
        return keras.Model(inputs, [sequence, mask], name=AUDIO_ENCODER)
    # The mean says what the song is like throughout, the max what stands out in some patch.
    pooled = MaskedMeanMaxPooling(name="audio_mean_max_pool")([x, mask])
    pooled = keras.layers.Dropout(config.dropout, name="audio_dropout")(pooled)
    vector = keras.layers.Dense(config.dense_units, activation="relu", name="audio_dense")(pooled)
    return keras.Model(inputs, vector, name=AUDIO_ENCODER)


def _token_vectors(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None, inputs: dict
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The lyrics input(s) -> token vectors [batch, max_tokens, width] and mask bool [batch, max_tokens]."""
    if features.uses_embeddings:
        embeddings = keras.Input(
            (features.max_tokens, features.embedding_width), name=EMBEDDINGS_INPUT, dtype="float32"
        )
        tokens = keras.Input((), name=TOKENS_INPUT, dtype="int32")
        inputs[EMBEDDINGS_INPUT], inputs[TOKENS_INPUT] = embeddings, tokens
        return embeddings, LengthMask(features.max_tokens, name="tokens_mask")(tokens)

    words = keras.Input((), name=WORDS_INPUT, dtype="string")
    inputs[WORDS_INPUT] = words
    # The shards hold principal words already cleaned and capped: split on spaces, nothing else.
    vectorization = keras.layers.TextVectorization(
        max_tokens=config.vocabulary_size,
        standardize=None,
        split="whitespace",
        output_sequence_length=features.max_tokens,
        # None (no statistics, or no training song has lyrics): every word is out of vocabulary.
        vocabulary=(statistics and statistics.vocabulary(config.vocabulary_size)) or None,
        name="words_vectorization",
    )
    ids = vectorization(words)
    vectors = keras.layers.Embedding(config.vocabulary_size, config.embedding_dim, name="word_embedding")(ids)
    return vectors, ops.not_equal(ids, 0)


def lyrics_encoder(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None
) -> keras.Model:
    """The lyrics encoder: its inputs (`_token_vectors`) -> for concat and gated fusion (and lyrics
    alone) a vector [batch, dense_units + 1] (zeros for a song without lyrics, then the has-lyrics
    flag) and the flag [batch, 1]; for attention fusion the LSTM outputs [batch, max_tokens,
    dense_units], the token mask bool [batch, max_tokens] and the flag."""
    inputs: dict[str, keras.KerasTensor] = {}
    x, mask = _token_vectors(config, features, statistics, inputs)
    if config.fused and config.modality_dropout:
        mask = ModalityDropout(config.modality_dropout, name="lyrics_dropout")(mask)
    guarded_mask, present = SequencePresence(name="lyrics_presence")(mask)
    for layer in range(config.lstm_layers):
        x = keras.layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm{layer}")(
            x, mask=guarded_mask
        )
        x = keras.layers.Dropout(config.dropout, name=f"lstm{layer}_dropout")(x)

    if config.fusion == "attention" and config.fused:
        sequence = keras.layers.Dense(config.dense_units, activation="relu", name="lyrics_tokens_dense")(x)
        return keras.Model(inputs, [sequence, mask, present], name=LYRICS_ENCODER)
    # The mean over the valid steps rather than the last state: every word's output reaches the
    # loss directly, which trains much faster on a small collection.
    x = keras.layers.GlobalAveragePooling1D(name="lyrics_pool")(x, mask=guarded_mask)
    vector = keras.layers.Dense(config.dense_units, activation="relu", name="lyrics_dense")(x)
    vector = keras.layers.Multiply(name="lyrics_if_present")([vector, present])
    vector = keras.layers.Concatenate(name="lyrics_vector")([vector, present])
    return keras.Model(inputs, [vector, present], name=LYRICS_ENCODER)


def _encode(encoder: keras.Model, inputs: dict[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """Call `encoder` on model inputs of the same names as its own, made here and added to `inputs`."""
    for tensor in encoder.inputs:
        inputs[tensor.name] = keras.Input(tensor.shape[1:], name=tensor.name, dtype=tensor.dtype)
    own = {tensor.name: inputs[tensor.name] for tensor in encoder.inputs}
    outputs = encoder(own if isinstance(encoder.input, dict) else next(iter(own.values())))
    return outputs if isinstance(outputs, list | tuple) else [outputs]


def _audio_branch(config: ModelConfig, encoder: keras.Model, inputs: dict) -> _Branch:
    output, *mask = _encode(encoder, inputs)
    if config.fusion == "attention" and config.fused:
        return _Branch(sequence=output, mask=mask[0] if mask else None)
    return _Branch(vector=output)


def _lyrics_branch(config: ModelConfig, encoder: keras.Model, inputs: dict) -> _Branch:
    outputs = _encode(encoder, inputs)
    if config.fusion == "attention" and config.fused:
        sequence, mask, present = outputs
        return _Branch(sequence=sequence, mask=mask, present=present)
    vector, present = outputs
    return _Branch(vector=vector, present=present)


def _fuse(config: ModelConfig, audio: _Branch | None, lyrics: _Branch | None) -> keras.KerasTensor:
    if not config.fused:
        return (audio or lyrics).vector
    if config.fusion == "concat":
        return keras.layers.Concatenate(name="concat_fusion")([audio.vector, lyrics.vector])
    if config.fusion == "gated":
        return GatedMultimodalUnit(config.dense_units, name="gated_fusion")([audio.vector, lyrics.vector])
    audio_mask = [] if audio.mask is None else [audio.mask]
    attended = CrossModalAttention(
        ATTENTION_HEADS, config.dense_units // ATTENTION_HEADS, config.dropout, name="attention_fusion"
    )([audio.sequence, lyrics.sequence, lyrics.mask, *audio_mask])
    return keras.layers.Concatenate(name="attention_and_presence")([attended, lyrics.present])


def build_model(
    config: ModelConfig, meta: ShardsMeta, statistics: ShardStatistics | None = None
) -> keras.Model:
    """A compiled model for the shards described by `meta`.

    `statistics`: the training split's (`genre_fusion.data.train_statistics`, counted by `data_prep
    build`): the audio normalisation's per-dimension mean and variance (mel bins, or embedding
    dimensions) and the learned encoder's vocabulary. Without them the normalisation is the
    identity and every word is out of vocabulary: the model has its final structure (for summaries
    and shapes), not its inputs' scale.
    Raises ValueError when the settings do not fit the shards' features.
    """
    features = meta.features
    config.check_features(features)
    inputs: dict[str, keras.KerasTensor] = {}
    audio = lyrics = None
    if AUDIO in config.modalities:
        audio = _audio_branch(config, audio_encoder(config, features, statistics), inputs)
    if LYRICS in config.modalities:
        lyrics = _lyrics_branch(config, lyrics_encoder(config, features, statistics), inputs)

    x = keras.layers.Dropout(config.dropout, name="fusion_dropout")(_fuse(config, audio, lyrics))
    x = keras.layers.Dense(config.dense_units, activation="relu", name="fusion_dense")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    single = meta.label_mode == "single"
    # float32 under mixed precision too: the probabilities and the loss stay exact.
    outputs = keras.layers.Dense(
        len(meta.genres), activation="softmax" if single else "sigmoid", dtype="float32", name=OUTPUT_NAME
    )(x)
    name = "_".join(config.modalities) + (f"_{config.fusion}" if config.fused else "")
    model = keras.Model(inputs, outputs, name=name)

    if single:
        loss = keras.losses.CategoricalCrossentropy()
        metrics = [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(TOP_K, name=f"top{TOP_K}_accuracy"),
        ]
    else:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.AUC(multi_label=True, num_labels=len(meta.genres), name="auc")]
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics)
    return model
