"""What a search maximises: validation accuracy (`single` labels) or validation mAP (`multi`).

Keras Tuner reads its objective from the `fit` history, so the objective is a Keras metric of
the compiled model, read on the validation split (``val_`` prefix). `build_model` compiles
categorical accuracy as ``accuracy`` for `single`; for `multi` the model is recompiled here with
mean average precision in its place (the same optimiser and loss), because accuracy is
meaningless for several labels and a 0.5-threshold F1 rewards calibration over ranking.
"""

from __future__ import annotations

import keras
import keras_tuner as kt

from genre_fusion.shards import ShardsMeta

ACCURACY = "accuracy"  # the name `build_model` gives its categorical accuracy
MEAN_AVERAGE_PRECISION = "mean_average_precision"
VALIDATION_PREFIX = "val_"
VALIDATION_SPLIT = "val"


def search_objective(meta: ShardsMeta) -> kt.Objective:
    """The objective for the label mode of `meta`: ``val_accuracy`` or ``val_mean_average_precision``."""
    metric = ACCURACY if meta.label_mode == "single" else MEAN_AVERAGE_PRECISION
    return kt.Objective(VALIDATION_PREFIX + metric, direction="max")


def with_objective_metric(model: keras.Model, meta: ShardsMeta) -> keras.Model:
    """`model` (compiled by `build_model`), compiled to log the objective; the same model is returned.

    For `multi`: mAP is Keras' area under the precision-recall curve per genre, averaged over the
    genres that have validation songs (a genre without any has no precision-recall curve and would
    add the same 0 to every trial); over every genre when meta.json has no per-genre counts.
    """
    if meta.label_mode == "single":
        return model
    counts = meta.genre_counts.get(VALIDATION_SPLIT)
    with_songs = [float(count > 0) for count in counts] if counts else None
    mean_average_precision = keras.metrics.AUC(
        curve="PR",
        multi_label=True,
        num_labels=len(meta.genres),
        label_weights=with_songs,
        name=MEAN_AVERAGE_PRECISION,
    )
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=[mean_average_precision])
    return model
