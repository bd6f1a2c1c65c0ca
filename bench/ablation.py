"""The thesis, measured: audio-only, lyrics-only and fused models trained the same way, on one set
of shards, or on one collection's shards of several audio encoders.

    python bench/ablation.py SHARDS [--out DIR] [--epochs 12] [--seed 0] [--fusions concat]
        [--modalities audio,lyrics,fused] [train flags...]
    python bench/ablation.py --collection MANIFEST_OR_MUSIC4ALL_DIR
        --audio-encoder log-mel,musicnn-msd,musicnn-mtt [--modalities audio]
        [--build-args="--clip-seconds 10 --limit 500"] [--out DIR] [--epochs 12] [--seed 0] [train flags...]

Trains one run per model with the same seed, epochs and architecture settings (any extra flags
go to `python -m genre_fusion.train` for every run), evaluates each on the test split and prints
one table of test accuracy and macro-F1 (markdown, ready for the README). ``--modalities`` picks
the models: ``audio`` (audio only), ``lyrics`` (lyrics only), ``fused`` (both, one per fusion of
``--fusions``); all three by default.

With ``--collection`` (a manifest CSV or a Music4All folder) the shards are built first, once per
``--audio-encoder`` (``python -m data_prep build --audio-encoder E --seed S`` plus
``--build-args``), and the table has a row per encoder and model, with the test split's songs and
the build's songs per second (its wall time, loading the encoder included). The split is seeded
and grouped by artist, so the same collection and seed give every build the same split; the
builds' splits.csv are compared all the same, and a difference stops the comparison.

Runs (and built shards) are kept under DIR (default: a temporary folder) with their metrics and
plots.
"""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

from data_prep.__main__ import main as data_prep_main
from genre_fusion import train
from genre_fusion.data.shards import SPLITS_FILE, read_meta
from genre_fusion.evaluation.evaluate import evaluate_run

# --modalities' models -> their train --modalities.
MODEL_MODALITIES = {"audio": "audio", "lyrics": "lyrics", "fused": "audio,lyrics"}
MODELS = tuple(MODEL_MODALITIES)


def _models(names: str, fusions: str) -> list[tuple[str, str, str]]:
    """--modalities and --fusions -> (model name, train --modalities, train --fusion) per run."""
    chosen = names.split(",")
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        raise SystemExit(f"--modalities: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    models = []
    for name in MODELS:
        if name not in chosen:
            continue
        if name == "fused":
            models += [(f"fused ({fusion})", MODEL_MODALITIES[name], fusion) for fusion in fusions.split(",")]
        else:
            models.append((name, MODEL_MODALITIES[name], "concat"))
    return models


def _slug(text: str) -> str:
    """A folder name for a model or an encoder (which may be a URL or a path)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")


def _train_and_evaluate(shards: Path, models, out: Path, args, train_flags: list[str]) -> list[tuple]:
    """(model name, test metrics, train + eval seconds) of each model trained on `shards`."""
    rows = []
    for name, modalities, fusion in models:
        run = out / _slug(name)
        started = time.perf_counter()
        code = train.main(
            [
                "--data", str(shards), "--run", str(run), "--epochs", str(args.epochs),
                "--seed", str(args.seed), "--modalities", modalities, "--fusion", fusion,
                "--overwrite", *train_flags,
            ]
        )  # fmt: skip
        if code:
            raise SystemExit(f"training {name} on {shards} failed (exit {code})")
        rows.append((name, evaluate_run(run, "test"), time.perf_counter() - started))
    return rows


def _build(collection: Path, encoder: str, shards: Path, args) -> float:
    """Build the shards of `collection` for `encoder` into `shards`; returns the build's seconds."""
    source = "--manifest" if collection.is_file() else "--music4all"
    started = time.perf_counter()
    code = data_prep_main(
        [
            "build", source, str(collection), "--out", str(shards), "--audio-encoder", encoder,
            "--seed", str(args.seed), "--quiet", *shlex.split(args.build_args),
        ]
    )  # fmt: skip
    if code:
        raise SystemExit(f"building the shards of --audio-encoder {encoder} failed (exit {code})")
    return time.perf_counter() - started


def _split(shards: Path) -> set[tuple[str, ...]]:
    with open(shards / SPLITS_FILE, newline="", encoding="utf-8") as handle:
        return {tuple(row) for row in csv.reader(handle)}


def _check_same_split(built: dict[str, Path]) -> None:
    """Every build's splits.csv must hold the same (song, split) pairs as the first one's."""
    (first, first_shards), *others = built.items()
    expected = _split(first_shards)
    for encoder, shards in others:
        differing = len(expected ^ _split(shards))
        if differing:
            raise SystemExit(
                f"the builds of {first} and {encoder} split the collection differently ({differing} rows "
                f"of {SPLITS_FILE} differ): the comparison would not be on the same songs"
            )
    songs = len(expected) - 1  # the header row
    print(f"\nsame split: the {SPLITS_FILE} of the {len(built)} builds are identical ({songs} songs)")


def _compare_encoders(args, models, out: Path, train_flags: list[str]) -> None:
    encoders = args.audio_encoder.split(",")
    built, speeds = {}, {}
    for encoder in encoders:
        shards = out / f"shards-{_slug(encoder)}"
        seconds = _build(args.collection, encoder, shards, args)
        built[encoder] = shards
        speeds[encoder] = sum(read_meta(shards).split_sizes.values()) / seconds
    _check_same_split(built)
    rows = []
    for encoder, shards in built.items():
        for name, metrics, _ in _train_and_evaluate(shards, models, out / _slug(encoder), args, train_flags):
            rows.append((encoder, name, metrics, speeds[encoder]))

    print(f"\ncollection {args.collection}, seed {args.seed}, {args.epochs} epochs, test split\n")
    print("| audio encoder | modalities | test accuracy | test macro-F1 | test songs | preparation songs/s |")
    print("|---|---|---|---|---|---|")
    for encoder, name, metrics, speed in rows:
        print(
            f"| {encoder} | {name} | {metrics['accuracy']:.3f} | {metrics['macro_f1']:.3f} "
            f"| {metrics['songs']} | {speed:.1f} |"
        )


def _compare_models(args, models, out: Path, train_flags: list[str]) -> None:
    rows = _train_and_evaluate(Path(args.shards), models, out, args, train_flags)
    songs = rows[-1][1]["songs"]
    print(f"\nshards {args.shards}, seed {args.seed}, {args.epochs} epochs, test split ({songs} songs)\n")
    print("| model | test accuracy | test macro-F1 | train + eval time |")
    print("|---|---|---|---|")
    for name, metrics, seconds in rows:
        print(f"| {name} | {metrics['accuracy']:.3f} | {metrics['macro_f1']:.3f} | {seconds:.0f} s |")


def _parser(with_shards: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    # Only one form declares SHARDS: else a train flag's value would be taken for it.
    if with_shards:
        parser.add_argument("shards")
    parser.add_argument("--collection", type=Path, help="manifest CSV or Music4All folder to build from")
    parser.add_argument(
        "--audio-encoder", help="with --collection: comma-separated audio encoders, e.g. log-mel,musicnn-msd"
    )
    parser.add_argument("--build-args", default="", help="with --collection: more data_prep build flags")
    parser.add_argument("--out", type=Path, help="folder for the runs and shards (default: temporary)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed, and the split's with --collection"
    )
    parser.add_argument("--modalities", default=",".join(MODELS), help=f"models: of {', '.join(MODELS)}")
    parser.add_argument("--fusions", default="concat", help="fused variants, e.g. concat,gated,attention")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with_collection = any(arg.split("=")[0] == "--collection" for arg in argv)
    parser = _parser(with_shards=not with_collection)
    args, train_flags = parser.parse_known_args(argv)
    if with_collection and not args.audio_encoder:
        parser.error("--collection needs --audio-encoder (comma-separated encoders to compare)")
    if not with_collection and args.audio_encoder:
        parser.error("--audio-encoder needs --collection: the shards are built for each encoder")

    models = _models(args.modalities, args.fusions)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        if with_collection:
            _compare_encoders(args, models, out, train_flags)
        else:
            _compare_models(args, models, out, train_flags)


if __name__ == "__main__":
    main()
