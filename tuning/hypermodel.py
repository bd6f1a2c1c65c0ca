"""A Keras Tuner HyperModel over `genre_fusion.model.build_model`, the builder training uses.

A trial's hyperparameters become a `ModelConfig` (see `tuning.space`); the model is exactly the one
`python -m genre_fusion.train` would build from that config, compiled to log the search objective.
"""

from __future__ import annotations

import keras
import keras_tuner as kt
import tensorflow as tf

from genre_fusion.model import build_model
from genre_fusion.shards import ShardsMeta
from tuning.objective import with_objective_metric
from tuning.space import SearchSpace


class GenreHyperModel(kt.HyperModel):
    """Builds one compiled genre model per trial.

    Args:
        meta: the shards' metadata (genres, label mode, features).
        modalities: the modalities of every model of the search.
        space: the ranges of the tuned `ModelConfig` fields.
        adapt_data: batches of the training split; adapts each model's log-mel normalisation and
            learned vocabulary, as training does.
    """

    def __init__(
        self,
        meta: ShardsMeta,
        modalities: tuple[str, ...],
        space: SearchSpace,
        adapt_data: tf.data.Dataset,
    ):
        super().__init__(name="genre_fusion")
        self.meta = meta
        self.modalities = modalities
        self.space = space
        self.adapt_data = adapt_data

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        config = self.space.declare(hp, self.modalities, self.meta.features.mel_bins)
        return with_objective_metric(build_model(config, self.meta, self.adapt_data), self.meta)
