"""`python -m tuning`: search the genre model's architecture with Keras Tuner.

Trains models built by `genre_fusion.model.build_model` on the shards' train split with the
training recipe of `genre_fusion.train` (`genre_fusion.training.recipe`), ranks them by the number that
selects a training run's best epoch (validation loss for `single` labels, macro-F1 with
--class-weights, mean average precision for `multi`, as evaluation computes them), and writes
OUT/best_hparams.json (for `python -m genre_fusion.train --hparams`), OUT/leaderboard.csv and
OUT/objective.png. Rerunning the same command continues the search.

Exit status: 0 when at least one trial finished (failed ones are listed, with a warning); 1 when
every trial failed (the first one's error is printed); 2 for bad input (shards, options, an --out
holding another search).
"""

from __future__ import annotations

import argparse
import sys

from genre_fusion.data.inputs import MODALITIES
from genre_fusion.interruption import on_interrupt
from genre_fusion.model.config import SettingError
from tuning.report import LEADERBOARD_FILE, REPORT_FILES, format_leaderboard, leaderboard, write_reports
from tuning.search import PROJECT_NAME, TUNERS, SearchError, SearchResult, SearchSettings, run_search


def _parser() -> argparse.ArgumentParser:
    defaults = SearchSettings(data="", out="")
    parser = argparse.ArgumentParser(
        prog="python -m tuning",
        description=__doc__.splitlines()[0],
        allow_abbrev=False,  # a misspelt flag must fail, not match a longer one
    )
    parser.add_argument("--data", required=True, help="shards directory (python -m data_prep build)")
    parser.add_argument("--out", required=True, help="folder for the search (a rerun continues it)")
    parser.add_argument("--tuner", choices=TUNERS, default=defaults.tuner)
    parser.add_argument(
        "--max-trials",
        type=int,
        default=defaults.max_trials,
        help="models to try, all runs together (hyperband stops there too, even inside a bracket)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help="most epochs per trial (early stopping may end sooner)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--modalities",
        default=",".join(defaults.modalities),
        help=f"comma-separated, fixed for the search: {', '.join(MODALITIES)}",
    )
    parser.add_argument(
        "--class-weights",
        action="store_true",
        help="train with class weights, as `genre_fusion.train --class-weights`; ranks by macro-F1",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help=f"epochs without a better objective before a trial stops (default {defaults.patience})",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard the search in --out and start over")
    return parser


def _report(result: SearchResult) -> None:
    """Writes the report files and prints the leaderboard and where everything went."""
    paths = write_reports(result)
    print(format_leaderboard(leaderboard(result)))
    finished = len(result.trials) - len(result.failed)
    print(
        f"{len(result.trials)} trials ({result.new_trials} new, {finished} finished) "
        f"in {result.seconds:.1f} s; files in {result.settings.out}: {', '.join(sorted(paths))}"
    )


@on_interrupt("finished trials are kept; rerun the same command to resume the search")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = SearchSettings(
            data=args.data,
            out=args.out,
            tuner=args.tuner,
            max_trials=args.max_trials,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            modalities=args.modalities,
            class_weights=args.class_weights,
            patience=args.patience,
            overwrite=args.overwrite,
        )
        result = run_search(settings, outputs=REPORT_FILES)
    except SettingError as error:
        print(f"error: {error.for_option()}", file=sys.stderr)
        return 2
    except SearchError as error:
        _report(error.result)
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # ShardsError, SearchSettingsError, bad options or too few mel bins
        print(f"error: {error}", file=sys.stderr)
        return 2
    _report(result)
    if result.failed:
        first = result.failed[0]
        print(
            f"warning: {len(result.failed)} of {len(result.trials)} trials failed (error column of "
            f"{LEADERBOARD_FILE}; tracebacks in {PROJECT_NAME}/trial_*/trial.json); the first, trial "
            f"{first.trial_id}: {first.error_line or 'no error message'}",
            file=sys.stderr,
        )
    print(f"best {result.objective} {result.best_trial.objective:.4f} (trial {result.best_trial.trial_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
