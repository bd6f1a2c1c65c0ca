"""The thesis, measured: audio-only, lyrics-only and fused models trained the same way over seeds,
on one set of shards, or on one collection's shards of several audio encoders.

    python bench/ablation.py SHARDS [--out DIR] [--seeds 3] [--epochs 12] [--models audio,lyrics,concat]
        [train flags...]
    python bench/ablation.py --collection MANIFEST_OR_MUSIC4ALL_DIR
        --audio-encoder log-mel,musicnn-msd,musicnn-mtt [--models audio] [--seeds 3]
        [--build-args="--clip-seconds 10 --limit 500"] [--out DIR] [--epochs 12] [train flags...]

With SHARDS this is `python -m genre_fusion.compare` (one run per model and seed, mean ± sd over
the seeds and a 95% bootstrap interval over the test songs; see `genre_fusion.comparison.cli`).

With ``--collection`` (a manifest CSV or a Music4All folder) the shards are built first, once per
``--audio-encoder`` (``python -m data_prep build --audio-encoder E --seed S`` plus
``--build-args``; S is ``--split-seed``, default 0), each encoder's models are compared as above,
and one table has a row per encoder and model with the build's songs per second (its wall time,
loading the encoder included). The split is seeded and grouped by artist, so every build gets the
same split; the builds' splits.csv are compared all the same, and a difference stops the
comparison.

Everything is kept under DIR (default: a temporary folder); rerunning the same command resumes.
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
from genre_fusion.comparison.cli import main as compare_main
from genre_fusion.comparison.models import DEFAULT_MODELS
from genre_fusion.comparison.song_scores import HEADLINES
from genre_fusion.comparison.summary import SCORE_NAMES
from genre_fusion.data.shards import SPLITS_FILE, read_meta

SUMMARY_CSV = "summary.csv"


def _slug(text: str) -> str:
    """A folder name for an encoder (which may be a URL or a path)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")


def _build(collection: Path, encoder: str, shards: Path, args) -> float:
    """Build the shards of `collection` for `encoder` into `shards`; returns the build's seconds."""
    source = "--manifest" if collection.is_file() else "--music4all"
    started = time.perf_counter()
    code = data_prep_main(
        [
            "build", source, str(collection), "--out", str(shards), "--audio-encoder", encoder,
            "--seed", str(args.split_seed), "--quiet", *shlex.split(args.build_args),
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


def _compare(shards: Path, out: Path, args, train_flags: list[str]) -> None:
    argv = ["--data", str(shards), "--out", str(out), "--models", args.models, "--seeds", str(args.seeds)]
    code = compare_main([*argv, "--epochs", str(args.epochs), *train_flags])
    if code:
        raise SystemExit(f"the comparison on {shards} failed (exit {code})")


def _compare_encoders(args, out: Path, train_flags: list[str]) -> None:
    built, speeds = {}, {}
    for encoder in args.audio_encoder.split(","):
        shards = out / f"shards-{_slug(encoder)}"
        seconds = _build(args.collection, encoder, shards, args)
        built[encoder] = shards
        speeds[encoder] = sum(read_meta(shards).split_sizes.values()) / seconds
    _check_same_split(built)
    rows = []
    for encoder, shards in built.items():
        _compare(shards, out / _slug(encoder), args, train_flags)
        with open(out / _slug(encoder) / SUMMARY_CSV, newline="", encoding="utf-8") as handle:
            rows += [(encoder, row) for row in csv.DictReader(handle)]

    scores = HEADLINES[read_meta(next(iter(built.values()))).label_mode]
    print(f"\ncollection {args.collection}, {args.seeds} seeds, {args.epochs} epochs, test split")
    print("mean ± sd over seeds [95% bootstrap interval]\n")
    header = ["audio encoder", "model", *(f"test {SCORE_NAMES[name]}" for name in scores)]
    print("| " + " | ".join([*header, "test songs", "preparation songs/s"]) + " |")
    print("|" + "---|" * (len(header) + 2))
    by_model = {}
    for encoder, row in rows:
        by_model.setdefault((encoder, row["model"]), {})[row["score"]] = row
    for (encoder, model), cells in by_model.items():
        values = [_cell(cells[name]) for name in scores]
        songs = next(iter(cells.values()))["test_songs"]
        print(f"| {encoder} | {model} | {' | '.join(values)} | {songs} | {speeds[encoder]:.1f} |")


def _cell(row: dict) -> str:
    spread = f" ± {float(row['sd']):.3f}" if row["sd"] else ""
    return f"{float(row['mean']):.3f}{spread} [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}]"


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
    parser.add_argument("--split-seed", type=int, default=0, help="with --collection: the build's --seed")
    parser.add_argument("--out", type=Path, help="folder for the runs and shards (default: temporary)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model: 0 .. N-1")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help=f"comma-separated, of {', '.join(DEFAULT_MODELS)}"
    )
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

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        if with_collection:
            _compare_encoders(args, out, train_flags)
        else:
            _compare(Path(args.shards), out, args, train_flags)


if __name__ == "__main__":
    main()
