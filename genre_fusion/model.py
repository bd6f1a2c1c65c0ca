"""The genre model: an audio branch and a lyrics branch, fused, with a softmax (or sigmoid) head.

`build_model(config, meta, statistics)` is the one builder shared by training and tuning:

- Audio: log-mel [batch, mel_bins, frames] -> per-mel-bin normalisation -> `conv_blocks` blocks of
  Conv2D 3x3, batch norm, ReLU, 2x2 max pooling (filters `conv_filters`, doubling per block), read
  with time first so that the final feature map is also a sequence of audio frames -> global
  average pooling -> dense.
- Lyrics: token vectors (the learned encoder: `TextVectorization` over the training split's most
  frequent words and a trainable embedding; or the cached hub embeddings) -> token mask (modality dropout in
  training) -> `lstm_layers` stacked LSTMs -> mean over the valid tokens -> dense, zeroed for a
  song without lyrics, beside a has-lyrics flag (see `fusion.py`).
- Fusion: ``concat`` (the proposal: concatenation into dense layers), ``gated`` (gated multimodal
  unit) or ``attention`` (symmetric cross-modal attention between the audio frames and the LSTM
  outputs per token, instead of the two poolings), then dense -> head. Only the branches of
  `modalities` are built.

Inputs, by name (a contract with the data pipeline and the export): ``log_mel`` float32
[batch, mel_bins, frames]; with the learned encoder ``words`` string [batch] (principal words, ""
without lyrics); with a hub encoder ``embeddings`` float32 [batch, max_tokens, width] (zero-padded)
and ``tokens`` int32 [batch] (valid rows, 0 without lyrics). Output: genre probabilities float32
[batch, genres], softmax for ``single`` label mode, sigmoid for ``multi``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import keras
from keras import ops

from genre_fusion.features import FeatureConfig
from genre_fusion.fusion import CrossModalAttention, GatedMultimodalUnit, ModalityDropout, SequencePresence
from genre_fusion.shards import ShardsMeta
from genre_fusion.train_statistics import ShardStatistics

AUDIO = "audio"
LYRICS = "lyrics"
MODALITIES = (AUDIO, LYRICS)
FUSIONS = ("concat", "gated", "attention")

LOG_MEL_INPUT = "log_mel"
WORDS_INPUT = "words"
EMBEDDINGS_INPUT = "embeddings"
TOKENS_INPUT = "tokens"
OUTPUT_NAME = "genres"

KERNEL_SIZE = 3
POOL_SIZE = 2
ATTENTION_HEADS = 4
TOP_K = 3
# Keras' default 0.99 leaves the moving statistics of a small training split (a few hundred
# steps in all) far from the batch statistics, and inference far from training.
BATCH_NORM_MOMENTUM = 0.9
# The learned encoder's vocabulary: padding, out-of-vocabulary and at least one word.
MIN_VOCABULARY_SIZE = 3


def max_conv_blocks(mel_bins: int) -> int:
    """The most conv blocks whose pooling leaves at least one of `mel_bins` mel bins."""
    blocks = 0
    while POOL_SIZE ** (blocks + 1) <= mel_bins:
        blocks += 1
    return blocks


def option_name(setting: str) -> str:
    """The command-line option of a setting: ``lstm_units`` -> ``--lstm-units``."""
    return "--" + setting.replace("_", "-")


class SettingError(ValueError):
    """A setting whose value cannot work. `setting` names the field and `problem` says what is
    expected; ``str()`` joins them ("lstm_units must be an integer >= 1, got 0")."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem

    def for_option(self) -> str:
        """The message as the command line names the setting: "--lstm-units must be ..."."""
        return f"{option_name(self.setting)} {self.problem}"


def check_integer(setting: str, value, lowest: int, highest: int | None = None) -> int:
    """`value` when it is an integer (a bool is not) in [lowest, highest]; `SettingError` otherwise."""
    in_range = f">= {lowest}" if highest is None else f"in [{lowest}, {highest}]"
    if not isinstance(value, int) or isinstance(value, bool):
        raise SettingError(setting, f"must be an integer {in_range}, got {value!r}")
    if value < lowest or (highest is not None and value > highest):
        raise SettingError(setting, f"must be an integer {in_range}, got {value}")
    return value


def check_fraction(setting: str, value) -> float:
    """`value` as a float when it is a number in [0, 1); `SettingError` otherwise."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise SettingError(setting, f"must be a number in [0, 1), got {value!r}")
    return float(value)


def check_flag(setting: str, value) -> bool:
    """`value` when it is a bool (JSON true/false); `SettingError` otherwise."""
    if not isinstance(value, bool):
        raise SettingError(setting, f"must be true or false, got {value!r}")
    return value


def parse_modalities(value) -> tuple[str, ...]:
    """"audio, lyrics" (spaces allowed) or a sequence of names -> a tuple of distinct known modalities;
    `SettingError` otherwise."""
    names = value.split(",") if isinstance(value, str) else value
    if isinstance(names, list | tuple) and all(isinstance(name, str) for name in names):
        names = tuple(name.strip() for name in names if name.strip())
        if names and set(names) <= set(MODALITIES) and len(set(names)) == len(names):
            return names
    raise SettingError(
        "modalities", f"must be one or both of {', '.join(MODALITIES)} (comma-separated), got {value!r}"
    )


@dataclass
class ModelConfig:
    """Architecture and optimiser settings; every field is a tunable hyperparameter.

    Every value is checked here, for training and tuning alike: `SettingError` names the field of
    a value of the wrong type or range. Numbers of float fields come back as floats."""

    modalities: tuple[str, ...] = (AUDIO, LYRICS)
    conv_blocks: int = 4
    conv_filters: int = 32  # filters of the first conv block; doubled by each following block
    lstm_layers: int = 2
    lstm_units: int = 64
    dense_units: int = 128
    dropout: float = 0.3
    fusion: str = "concat"
    modality_dropout: float = 0.2  # fraction of training songs whose lyrics are hidden (fused model)
    embedding_dim: int = 64  # learned encoder only
    vocabulary_size: int = 20000  # learned encoder only; padding and out-of-vocabulary included
    learning_rate: float = 3e-3

    def __post_init__(self):
        self.modalities = parse_modalities(self.modalities)
        sizes = ("conv_blocks", "conv_filters", "lstm_layers", "lstm_units", "dense_units", "embedding_dim")
        for name in sizes:
            check_integer(name, getattr(self, name), 1)
        check_integer("vocabulary_size", self.vocabulary_size, MIN_VOCABULARY_SIZE)
        for name in ("dropout", "modality_dropout"):
            setattr(self, name, check_fraction(name, getattr(self, name)))
        if not isinstance(self.fusion, str) or self.fusion not in FUSIONS:
            raise SettingError("fusion", f"must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 < rate < math.inf:
            raise SettingError("learning_rate", f"must be a finite number > 0, got {rate!r}")
        self.learning_rate = float(rate)
        if self.fusion == "attention" and self.dense_units % ATTENTION_HEADS:
            raise SettingError(
                "dense_units",
                f"must be a multiple of {ATTENTION_HEADS} for attention fusion (it splits them over "
                f"{ATTENTION_HEADS} heads), got {self.dense_units}",
            )

    def check_features(self, features: FeatureConfig) -> None:
        """Raise ValueError when these settings cannot work on clips of `features`."""
        most = max_conv_blocks(features.mel_bins)
        if AUDIO in self.modalities and self.conv_blocks > most:
            raise SettingError(
                "conv_blocks",
                f"must be at most {most}: more pool the {features.mel_bins} mel bins of the shards below 1, "
                f"got {self.conv_blocks}",
            )

    @property
    def fused(self) -> bool:
        return len(self.modalities) == len(MODALITIES)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["modalities"] = list(self.modalities)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Field values -> config; unknown names are an error (a typo must not pass silently)."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model settings {unknown}; known: {sorted(known)}")
        return cls(**values)


def input_names(modalities: tuple[str, ...], features: FeatureConfig) -> tuple[str, ...]:
    """The model's input names for these modalities and this text encoder."""
    names = []
    if AUDIO in modalities:
        names.append(LOG_MEL_INPUT)
    if LYRICS in modalities:
        names += [EMBEDDINGS_INPUT, TOKENS_INPUT] if features.uses_embeddings else [WORDS_INPUT]
    return tuple(names)


@dataclass(frozen=True)
class _Branch:
    """What a branch hands to the fusion: a vector [batch, width] per song, or for attention a
    sequence [batch, steps, dense_units]; the lyrics branch adds its token mask bool [batch, steps]
    and has-lyrics flag [batch, 1]."""

    vector: keras.KerasTensor | None = None
    sequence: keras.KerasTensor | None = None
    mask: keras.KerasTensor | None = None
    present: keras.KerasTensor | None = None


def _audio_branch(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None, inputs: dict
) -> _Branch:
    log_mel = keras.Input((features.mel_bins, None), name=LOG_MEL_INPUT, dtype="float32")
    inputs[LOG_MEL_INPUT] = log_mel
    # Per mel bin, by the training split's statistics; float32 whatever the policy (dB values).
    normalization = keras.layers.Normalization(
        axis=1,
        mean=None if statistics is None else statistics.mean,
        variance=None if statistics is None else statistics.variance,
        dtype="float32",
        name="log_mel_normalization",
    )
    x = normalization(log_mel)
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
        return _Branch(sequence=frames)
    pooled = keras.layers.GlobalAveragePooling2D(name="audio_pool")(x)
    pooled = keras.layers.Dropout(config.dropout, name="audio_dropout")(pooled)
    vector = keras.layers.Dense(config.dense_units, activation="relu", name="audio_dense")(pooled)
    return _Branch(vector=vector)


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
        positions = ops.expand_dims(ops.arange(features.max_tokens, dtype="int32"), 0)
        return embeddings, ops.less(positions, ops.expand_dims(tokens, -1))

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


def _lyrics_branch(
    config: ModelConfig, features: FeatureConfig, statistics: ShardStatistics | None, inputs: dict
) -> _Branch:
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
        return _Branch(sequence=sequence, mask=mask, present=present)
    # The mean over the valid steps rather than the last state: every word's output reaches the
    # loss directly, which trains much faster on a small collection.
    x = keras.layers.GlobalAveragePooling1D(name="lyrics_pool")(x, mask=guarded_mask)
    vector = keras.layers.Dense(config.dense_units, activation="relu", name="lyrics_dense")(x)
    vector = keras.layers.Multiply(name="lyrics_if_present")([vector, present])
    return _Branch(vector=keras.layers.Concatenate(name="lyrics_vector")([vector, present]), present=present)


def _fuse(config: ModelConfig, audio: _Branch | None, lyrics: _Branch | None) -> keras.KerasTensor:
    if not config.fused:
        return (audio or lyrics).vector
    if config.fusion == "concat":
        return keras.layers.Concatenate(name="concat_fusion")([audio.vector, lyrics.vector])
    if config.fusion == "gated":
        return GatedMultimodalUnit(config.dense_units, name="gated_fusion")([audio.vector, lyrics.vector])
    attended = CrossModalAttention(
        ATTENTION_HEADS, config.dense_units // ATTENTION_HEADS, config.dropout, name="attention_fusion"
    )([audio.sequence, lyrics.sequence, lyrics.mask])
    return keras.layers.Concatenate(name="attention_and_presence")([attended, lyrics.present])


def build_model(
    config: ModelConfig, meta: ShardsMeta, statistics: ShardStatistics | None = None
) -> keras.Model:
    """A compiled model for the shards described by `meta`.

    `statistics`: the training split's (`genre_fusion.train_statistics`, counted by `data_prep
    build`): the log-mel normalisation's per-mel-bin mean and variance and the learned encoder's
    vocabulary. Without them the normalisation is the identity and every word is out of
    vocabulary: the model has its final structure (for summaries and shapes), not its inputs' scale.
    Raises ValueError when the settings do not fit the shards' features.
    """
    features = meta.features
    config.check_features(features)
    inputs: dict[str, keras.KerasTensor] = {}
    audio = _audio_branch(config, features, statistics, inputs) if AUDIO in config.modalities else None
    lyrics = _lyrics_branch(config, features, statistics, inputs) if LYRICS in config.modalities else None

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
