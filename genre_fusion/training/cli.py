"""`python -m genre_fusion.train`: fit the genre model from feature shards into a run directory.

    python -m genre_fusion.train --data SHARDS --run RUN_DIR [--epochs N] [--batch-size B]
        [--modalities audio,lyrics] [--fusion concat|gated|attention] [--conv-blocks N] ...
        [--hparams best_hparams.json] [--class-weights] [--seed S] [--patience P]
        [--distribute] [--mixed-precision] [--overwrite]

Every `ModelConfig` field has a flag (``--lstm-units 64``); ``--hparams`` reads a JSON object of
such fields (the tuner's best_hparams.json) and explicit flags override it. The run directory's
layout is described in `genre_fusion.runs.layout`.

Training follows `genre_fusion.training.recipe`, as tuning does: Adam with a per-epoch cosine decay of the
learning rate, categorical cross-entropy (binary for multi-label shards), optional class weights,
early stopping and the best checkpoint by the recipe's monitor (validation loss; macro-F1 with
class weights; mAP for multi-label shards; recorded in run.json), TensorBoard and CSV logs.

A run that is killed resumes from its last finished epoch when the same command runs again, and
ends with the history an uninterrupted run has: the data order and the random layers' seeds are
functions of the seed and the epoch. A finished run is kept unless ``--overwrite``, which removes
only what the project wrote into the folder (`genre_fusion.files.owned_outputs`) and refuses a folder
that holds anything else. Bad input (a bad option value, missing or incompatible shards, an empty
split, a finished run, a run of other shards or settings, a --run that cannot be written) stops
with a message and exit code 2, before anything is changed; a loss that becomes NaN or infinite
stops with exit code 1 and leaves the run unfinished.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from genre_fusion.data.shards import ShardsError, ShardsMeta, read_meta
from genre_fusion.files.owned_outputs import OutputsError
from genre_fusion.interruption import on_interrupt
from genre_fusion.model.config import FUSIONS, ModelConfig, SettingError, option_name
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.layout import MODEL_FILE
from genre_fusion.training.recipe import TrainingDiverged
from genre_fusion.training.trainer import train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.train",
        description="Train the genre model from feature shards.",
        allow_abbrev=False,  # a misspelt flag must fail, not match a longer one
    )
    parser.add_argument("--data", required=True, help="shards directory of `python -m data_prep build`")
    parser.add_argument("--run", required=True, help="run directory to write (or to resume)")
    # Training flags default to None: only what is given overrides TrainConfig's defaults.
    defaults = TrainConfig(data="", run="")
    parser.add_argument("--epochs", type=int, help=f"most epochs (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"global batch size (default {defaults.batch_size})")
    parser.add_argument("--seed", type=int, help=f"random seed, 0 to 2**32 - 1 (default {defaults.seed})")
    parser.add_argument(
        "--patience",
        type=int,
        help=f"epochs without a better monitored value before stopping (default {defaults.patience})",
    )
    parser.add_argument(
        "--class-weights",
        action="store_true",
        default=None,
        help="weight songs by the inverse frequency of their genre (single-label shards); selects "
        "epochs by validation macro-F1",
    )
    parser.add_argument(
        "--distribute",
        action="store_true",
        default=None,
        help="MirroredStrategy over the local GPUs (or logical CPUs); MultiWorkerMirroredStrategy "
        "when TF_CONFIG is set",
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", default=None, help="float16 compute on a GPU"
    )
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="TF op determinism: the same seed gives the same numbers (default on)",
    )
    parser.add_argument(
        "--hparams", type=Path, help="JSON object of model settings (tuning's best_hparams.json)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --run (only what training and evaluation wrote there)",
    )

    model = parser.add_argument_group(
        "model (ModelConfig; default: the --hparams file, else the default shown)"
    )
    for item in fields(ModelConfig):
        default = getattr(ModelConfig(), item.name)
        if item.name == "modalities":
            model.add_argument(
                "--modalities", help=f"audio, lyrics or audio,lyrics (default {','.join(default)})"
            )
        else:
            model.add_argument(
                option_name(item.name),
                type=type(default),
                choices=FUSIONS if item.name == "fusion" else None,
                help=f"default {default}",
            )
    return parser


def parse_train_args(argv: Sequence[str]) -> argparse.Namespace:
    """`python -m genre_fusion.train`'s options parsed (argparse exits 2 on a bad one, naming it)."""
    return _parser().parse_args(argv)


def unknown_train_options(argv: Sequence[str]) -> list[str]:
    """The options of `argv` that `python -m genre_fusion.train` does not know, for commands that
    pass their other flags on to it."""
    return [arg for arg in _parser().parse_known_args(argv)[1] if arg.startswith("-")]


def _read_hparams(path: Path) -> dict:
    """The JSON object of model settings in `path`; ValueError naming --hparams and the problem."""
    if path.is_dir():
        raise ValueError(
            f"--hparams {path} is a folder: expected a JSON file of model settings "
            "(tuning's best_hparams.json)"
        )
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read --hparams {path}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"--hparams {path} is not a JSON file ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--hparams {path} must hold a JSON object of model settings")
    return values


def _config(args: argparse.Namespace, meta: ShardsMeta) -> TrainConfig:
    """Defaults, then the --hparams file, then explicit flags, for the shards of `meta`.

    Raises ValueError naming the option (or the --hparams file) of a bad value."""
    from_file = _read_hparams(args.hparams) if args.hparams else {}
    flags = {
        item.name: getattr(args, item.name)
        for item in fields(ModelConfig)
        if getattr(args, item.name) is not None
    }
    training = {
        item.name: getattr(args, item.name)
        for item in fields(TrainConfig)
        if item.name not in ("data", "run", "model") and getattr(args, item.name, None) is not None
    }
    try:
        model = ModelConfig.from_dict({**from_file, **flags})
        model.check_features(meta.features)
        config = TrainConfig(data=args.data, run=args.run, model=model, **training)
    except SettingError as error:
        if error.setting in from_file and error.setting not in flags:
            raise ValueError(f"--hparams {args.hparams}: {error}") from None
        raise ValueError(error.for_option()) from None
    except ValueError as error:  # unknown settings: only the file names settings
        raise ValueError(f"--hparams {args.hparams}: {error}") from None
    return config.with_shards(meta)


@on_interrupt("the epochs finished so far are kept; rerun the same command to resume")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_train_args(argv)
    try:
        if Path(args.data).is_file():
            raise ShardsError(
                f"--data {args.data} is a file: expected the shards folder of `python -m data_prep build`"
            )
        meta = read_meta(args.data)
        config = _config(args, meta)
    except ValueError as error:  # ShardsError is one
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        summary = train(config, meta, overwrite=args.overwrite)
    except (ShardsError, RunError, OutputsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(
            f"error: training diverged: {error}. The run is unfinished: start it over with a lower "
            "--learning-rate and --overwrite",
            file=sys.stderr,
        )
        return 1
    best = summary["best"]
    scores = ", ".join(f"{key} {value:.4f}" for key, value in best.items() if key.startswith("val_"))
    print(
        f"best epoch {summary['best_epoch'] + 1} of {summary['epochs']} by {summary['monitor']}: {scores}; "
        f"{args.run}/{MODEL_FILE} ({summary['seconds']:.0f} s)"
    )
    return 0

