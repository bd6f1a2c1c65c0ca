"""A Keras Tuner HyperModel over `genre_fusion.model.build_model`, the builder training uses.

A trial's hyperparameters become a `ModelConfig` (see `tuning.space`); the model is exactly the one
`python -m genre_fusion.train` would build from that config, and it is trained as training trains:
the same recipe (`genre_fusion.training.recipe`: learning-rate schedule, class weights, validation scores,
early stopping on the same monitor) over the training split in the same per-epoch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import keras_tuner as kt
import tensorflow as tf

from genre_fusion.data.pipeline import steps_per_epoch, training_epochs
from genre_fusion.data.shards import ShardsMeta
from genre_fusion.data.train_statistics import ShardStatistics
from genre_fusion.model.builder import build_model
from genre_fusion.training.recipe import Monitor, class_weights, selection_monitor, training_callbacks
from tuning.space import SearchSpace, conv_mel_bins


@dataclass(frozen=True)
class TrialTraining:
    """How every trial trains, as `python -m genre_fusion.train` would with the same options.

    `data`: the shards folder; `epochs`: the most epochs of a trial (the learning-rate schedule
    spans them, as in a training run of that many epochs); `patience`: epochs without a better
    monitored value before a trial stops."""

    data: str
    batch_size: int
    seed: int
    epochs: int
    patience: int
    class_weights: bool = False


class GenreHyperModel(kt.HyperModel):
    """Builds one compiled genre model per trial and trains it with the training recipe.

    Args:
        meta: the shards' metadata (genres, label mode, features).
        modalities: the modalities of every model of the search.
        space: the ranges of the tuned `ModelConfig` fields.
        statistics: the training split's (`genre_fusion.recipe.training_statistics`), which set
            each model's log-mel normalisation and learned vocabulary, as in training.
        validation_data: batches of (inputs, targets) of the validation split.
        training: how trials train.
    Raises `RunError` for class weights on multi-label shards.
    """

    def __init__(
        self,
        meta: ShardsMeta,
        modalities: tuple[str, ...],
        space: SearchSpace,
        statistics: ShardStatistics,
        validation_data: tf.data.Dataset,
        training: TrialTraining,
    ):
        super().__init__(name="genre_fusion")
        self.meta = meta
        self.modalities = modalities
        self.space = space
        self.statistics = statistics
        self.validation_data = validation_data
        self.training = training
        self.class_weights = class_weights(meta) if training.class_weights else None

    @property
    def monitor(self) -> Monitor:
        """What selects a trial's best epoch, and the trials."""
        return selection_monitor(self.meta.label_mode, self.training.class_weights)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        config = self.space.declare(hp, self.modalities, conv_mel_bins(self.meta.features))
        # From the seed, as a training run builds its model: a trial is the run of its settings.
        keras.utils.set_random_seed(self.training.seed)
        return build_model(config, self.meta, self.statistics)

    def fit(
        self, hp: kt.HyperParameters, model: keras.Model, *, epochs: int, initial_epoch: int = 0, **kwargs
    ):
        """Trains `model` (built from `hp`) from `initial_epoch` (Hyperband continues a trial from a
        checkpoint) to `epochs`; Keras Tuner's `callbacks` come after the recipe's, so they see its
        validation scores. Returns the `History`."""
        config = self.space.declare(hp, self.modalities, conv_mel_bins(self.meta.features))
        training = self.training
        recipe = training_callbacks(
            config,
            self.meta,
            self.validation_data,
            epochs=training.epochs,
            patience=training.patience,
            monitor=self.monitor,
        )
        batches = training_epochs(
            training.data,
            self.meta,
            self.modalities,
            training.batch_size,
            seed=training.seed,
            epochs=epochs,
            start_epoch=initial_epoch,
        )
        return model.fit(
            batches,
            validation_data=self.validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch(self.meta, "train", training.batch_size),
            callbacks=[*recipe, *kwargs.pop("callbacks", [])],
            class_weight=self.class_weights,
            shuffle=False,  # the dataset shuffles itself, reproducibly from the seed and the epoch
            **kwargs,
        )
