"""The search space: which `ModelConfig` fields Keras Tuner varies, and over which values.

Hyperparameters carry `ModelConfig` field names, so a trial's values are ModelConfig field values
as they stand (`best_hparams.json` needs no renaming). Only the fields of the searched
modalities are declared: an audio-only search has no LSTM settings, a single-modality search no
fusion; on the embeddings of a pretrained audio encoder, no conv blocks (the log-mel's CNN is not
built). The modalities themselves are fixed for a whole search (they decide the inputs, and so
the data); fields outside the space keep their `ModelConfig` defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras_tuner as kt

from genre_fusion.data.inputs import AUDIO, LYRICS
from genre_fusion.features.config import FeatureConfig
from genre_fusion.model.config import FUSIONS, POOL_SIZE, ModelConfig, max_conv_blocks


@dataclass(frozen=True)
class SearchSpace:
    """Ranges around the proposal's model (defaults of `ModelConfig` lie inside each).

    `conv_blocks`, `lstm_layers` and `learning_rate` are (lowest, highest), both included; the other
    tuples list every choice. `conv_blocks` is capped further by the mel bins of the shards (each
    block halves them); conv settings are searched on log-mel shards only. Dense widths are
    multiples of the 4 attention heads, so every fusion accepts every width.
    """

    conv_blocks: tuple[int, int] = (2, 5)
    conv_filters: tuple[int, ...] = (16, 32, 64)  # of the first block; doubled per block
    lstm_layers: tuple[int, int] = (1, 3)
    lstm_units: tuple[int, ...] = (32, 64, 128)
    dense_units: tuple[int, ...] = (64, 128, 256)
    dropout: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # choices: exact decimals in the reports
    fusion: tuple[str, ...] = FUSIONS
    learning_rate: tuple[float, float] = (1e-4, 3e-3)  # sampled on a log scale

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists."""
        return {
            name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()
        }

    def declare(
        self, hp: kt.HyperParameters, modalities: tuple[str, ...], mel_bins: int | None
    ) -> ModelConfig:
        """Declares the hyperparameters of `modalities` on `hp`, or reads their values if set.

        Args:
            hp: a trial's hyperparameters (a finished trial's too: its values are returned).
            modalities: the fixed modalities of the search.
            mel_bins: mel bins of log-mel shards, which cap `conv_blocks` at what the pooling
                allows; None for shards of audio embeddings, whose model has no conv blocks
                (`conv_mel_bins` tells which from the shards' features).

        Returns:
            The trial's `ModelConfig`. Raises ValueError when the mel bins allow fewer conv blocks
            than the lowest of the range.
        """
        values: dict = {}
        if AUDIO in modalities and mel_bins is not None:
            most_blocks = min(self.conv_blocks[1], max_conv_blocks(mel_bins))
            if most_blocks < self.conv_blocks[0]:
                raise ValueError(
                    f"{mel_bins} mel bins allow at most {most_blocks} conv blocks "
                    f"(each pools by {POOL_SIZE}), below the search's lowest {self.conv_blocks[0]}: "
                    "build the shards with more --mel-bins"
                )
            values["conv_blocks"] = hp.Int("conv_blocks", self.conv_blocks[0], most_blocks)
            values["conv_filters"] = hp.Choice("conv_filters", list(self.conv_filters))
        if LYRICS in modalities:
            values["lstm_layers"] = hp.Int("lstm_layers", *self.lstm_layers)
            values["lstm_units"] = hp.Choice("lstm_units", list(self.lstm_units))
        values["dense_units"] = hp.Choice("dense_units", list(self.dense_units))
        values["dropout"] = hp.Choice("dropout", list(self.dropout))
        if len(modalities) > 1:
            values["fusion"] = hp.Choice("fusion", list(self.fusion))
        values["learning_rate"] = hp.Float("learning_rate", *self.learning_rate, sampling="log")
        return ModelConfig(modalities=modalities, **values)


def conv_mel_bins(features: FeatureConfig) -> int | None:
    """`SearchSpace.declare`'s `mel_bins` for shards of these features: their mel bins, or None for
    the embeddings of a pretrained audio encoder (no log-mel, no conv blocks)."""
    return None if features.uses_audio_embeddings else features.mel_bins
