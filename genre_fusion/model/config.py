"""`ModelConfig`: the architecture and optimiser settings of the genre model, each one checked.

The checks serve training, ``--hparams`` files and tuning alike: `SettingError` names the setting
of a value of the wrong type or range, and `check_features` refuses settings that cannot work on
the shards' clips.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from genre_fusion.data.inputs import AUDIO, LYRICS, MODALITIES
from genre_fusion.features.config import FeatureConfig

FUSIONS = ("concat", "gated", "attention")
POOL_SIZE = 2  # the conv blocks' max pooling, which bounds their number
ATTENTION_HEADS = 4
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
        """Raise ValueError when these settings cannot work on clips of `features`. The conv blocks
        pool log-mels only: a pretrained audio encoder's embeddings do not limit them."""
        if AUDIO not in self.modalities or features.uses_audio_embeddings:
            return
        most = max_conv_blocks(features.mel_bins)
        if self.conv_blocks > most:
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

