"""The thesis, measured: audio-only, lyrics-only and fused models on the same shards.

    python bench/ablation.py SHARDS [--out DIR] [--epochs 12] [--seed 0] [--fusions concat] [train flags...]

Trains one run per model with the same seed, epochs and architecture settings (any extra flags
go to `python -m genre_fusion.train` for every run), evaluates each on the test split and prints
one table of test accuracy and macro-F1 (markdown, ready for the README). Runs are kept under
DIR (default: a temporary folder) with their metrics and plots.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from genre_fusion import train
from genre_fusion.evaluation.evaluate import evaluate_run

SINGLE_MODALITIES = ("audio", "lyrics")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shards")
    parser.add_argument("--out", type=Path, help="folder for the runs (default: temporary)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusions", default="concat", help="fused variants, e.g. concat,gated,attention")
    args, train_flags = parser.parse_known_args()

    models = [(modality, modality, "concat") for modality in SINGLE_MODALITIES]
    models += [(f"fused ({fusion})", "audio,lyrics", fusion) for fusion in args.fusions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = []
        for name, modalities, fusion in models:
            run = out / name.replace(" ", "-").replace("(", "").replace(")", "")
            started = time.perf_counter()
            code = train.main(
                [
                    "--data",
                    args.shards,
                    "--run",
                    str(run),
                    "--epochs",
                    str(args.epochs),
                    "--seed",
                    str(args.seed),
                    "--modalities",
                    modalities,
                    "--fusion",
                    fusion,
                    "--overwrite",
                    *train_flags,
                ]
            )
            if code:
                raise SystemExit(f"training {name} failed (exit {code})")
            metrics = evaluate_run(run, "test")
            rows.append((name, metrics["accuracy"], metrics["macro_f1"], time.perf_counter() - started))

    songs = metrics["songs"]
    print(f"\nshards {args.shards}, seed {args.seed}, {args.epochs} epochs, test split ({songs} songs)\n")
    print("| model | test accuracy | test macro-F1 | train + eval time |")
    print("|---|---|---|---|")
    for name, accuracy, macro_f1, seconds in rows:
        print(f"| {name} | {accuracy:.3f} | {macro_f1:.3f} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
