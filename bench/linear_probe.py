"""Which musicnn embedding serves genre best: a linear probe of each output on a labelled collection.

    python bench/linear_probe.py --manifest MANIFEST [--encoders musicnn-msd,musicnn-mtt]
        [--outputs penultimate,mean_pool,max_pool,pooled,taggram] [--folds 5] [--seed 0]
        [--clip-seconds S] [--limit-per-class N] [--csv OUT]

MANIFEST is a CSV with columns id,audio,lyrics,genres,artist (`data_prep.sources.read_manifest`),
one genre per clip; `artist` groups clips that must not be split between train and test.

1. Every clip is decoded once (`genre_fusion.features.audio.decode_audio`) to mono 16 kHz, its
   first S s (default: the whole clip up to 30 s), its zero padding dropped. Each encoder
   (`load_musicnn`) runs once per clip, in batches of clips of equal length, and every output is
   averaged over the clip's 2.992 s patches: one vector per clip and output. ``pooled`` is
   ``mean_pool`` then ``max_pool``, as `genre_fusion.encoders.audio` stores it. Encoder songs/s is
   the model calls alone, after one untimed warm-up batch.
2. Baseline on the same 16 kHz audio: the mean and standard deviation over frames of 20 MFCCs
   (librosa's defaults otherwise).
3. Each feature set is scored by a standardised logistic regression under
   `StratifiedGroupKFold(folds, shuffle=True, random_state=seed)` grouped by `artist`. Its C is
   picked from `C_GRID` in each training fold by an inner grouped CV (`INNER_FOLDS` folds, macro-F1).
   Printed: width, accuracy and macro-F1 mean +- std over the outer folds (population std), the C
   chosen in each fold, encoder songs/s; with chance level (1 / classes) and the class counts.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from data_prep.sources import read_manifest
from genre_fusion.encoders.audio import MUSICNN_ENCODERS, MUSICNN_POOLED
from genre_fusion.encoders.musicnn import OUTPUTS, load_musicnn
from genre_fusion.encoders.musicnn_log_mel import FFT_HOP, PATCH_FRAMES, SAMPLE_RATE
from genre_fusion.features.audio import decode_audio
from genre_fusion.features.config import DEFAULT_CLIP_SECONDS

PATCH_SECONDS = PATCH_FRAMES * FFT_HOP / SAMPLE_RATE  # 2.992 s: a shorter clip has no patch
BATCH_CLIPS = 4
MFCC_COEFFICIENTS = 20
BASELINE = f"mfcc{MFCC_COEFFICIENTS} mean+std"
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
INNER_FOLDS = 3
MAX_ITER = 2000
C_PARAMETER = "logisticregression__C"
KNOWN_OUTPUTS = (*OUTPUTS, MUSICNN_POOLED)


def decode_clips(paths: list[Path], clip_seconds: float) -> list[np.ndarray]:
    """Each file -> its mono 16 kHz waveform, at most `clip_seconds` long, without zero padding."""
    waveforms = []
    for path in paths:
        clip = decode_audio(path, SAMPLE_RATE, clip_seconds, min_seconds=PATCH_SECONDS)
        waveforms.append(clip.waveform[: int(round(clip.seconds * SAMPLE_RATE))])
    return waveforms


def equal_length_batches(waveforms: list[np.ndarray]) -> list[list[int]]:
    """Indices of `waveforms` in batches of at most `BATCH_CLIPS`, each of one length."""
    by_length: dict[int, list[int]] = {}
    for index, waveform in enumerate(waveforms):
        by_length.setdefault(len(waveform), []).append(index)
    return [
        indices[start : start + BATCH_CLIPS]
        for indices in by_length.values()
        for start in range(0, len(indices), BATCH_CLIPS)
    ]


def embed(encoder: str, waveforms: list[np.ndarray], outputs: list[str]) -> tuple[dict, float, Counter]:
    """One encoder over every clip -> ({output: float32 [clips, width], patch means}, songs/s,
    how many clips had how many patches)."""
    model = load_musicnn(encoder)
    batches = equal_length_batches(waveforms)
    model.predict_on_batch(np.stack([waveforms[i] for i in batches[0]]))  # warm-up: traces the graph
    needed = {"mean_pool", "max_pool"} if MUSICNN_POOLED in outputs else set()
    needed |= set(outputs) - {MUSICNN_POOLED}
    means = {key: [None] * len(waveforms) for key in needed}
    seconds = 0.0
    patch_counts = Counter()
    for indices in batches:
        started = time.perf_counter()
        result = model.predict_on_batch(np.stack([waveforms[i] for i in indices]))
        seconds += time.perf_counter() - started
        patch_counts[np.shape(result[outputs[0]])[1]] += len(indices)
        for key in needed:
            patches = np.asarray(result[key])  # [clips, patches, width]
            if not np.isfinite(patches).all():
                raise SystemExit(f"{encoder} {key}: non-finite values in clips {indices}")
            for row, index in enumerate(indices):
                means[key][index] = patches[row].mean(axis=0)
    features = {key: np.stack(means[key]) for key in needed}
    if MUSICNN_POOLED in outputs:
        features[MUSICNN_POOLED] = np.concatenate([features["mean_pool"], features["max_pool"]], axis=1)
    return {key: features[key] for key in outputs}, len(waveforms) / seconds, patch_counts


def mfcc_statistics(waveform: np.ndarray) -> np.ndarray:
    mfcc = librosa.feature.mfcc(y=waveform, sr=SAMPLE_RATE, n_mfcc=MFCC_COEFFICIENTS)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])


def probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> dict:
    """Grouped outer CV of a standardised logistic regression, C by inner grouped CV."""
    outer = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    inner = StratifiedGroupKFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed)
    accuracies, macro_f1s, chosen = [], [], []
    for train, test in outer.split(features, labels, groups):
        search = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER)),
            {C_PARAMETER: list(C_GRID)},
            scoring="f1_macro",
            cv=inner,
        )
        search.fit(features[train], labels[train], groups=groups[train])
        predicted = search.predict(features[test])
        accuracies.append(accuracy_score(labels[test], predicted))
        macro_f1s.append(f1_score(labels[test], predicted, average="macro"))
        chosen.append(search.best_params_[C_PARAMETER])
    return {
        "width": features.shape[1],
        "accuracy_mean": np.mean(accuracies),
        "accuracy_std": np.std(accuracies),
        "macro_f1_mean": np.mean(macro_f1s),
        "macro_f1_std": np.std(macro_f1s),
        "C_per_fold": " ".join(f"{c:g}" for c in chosen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--encoders", default=",".join(MUSICNN_ENCODERS))
    parser.add_argument("--outputs", default="penultimate,mean_pool,max_pool,pooled,taggram")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clip-seconds", type=float, default=DEFAULT_CLIP_SECONDS, help="audio kept per clip (default: 30)"
    )
    parser.add_argument("--limit-per-class", type=int, help="the first N clips of each class only")
    parser.add_argument("--csv", type=Path, help="write the table here too")
    args = parser.parse_args()
    encoders = args.encoders.split(",")
    outputs = args.outputs.split(",")
    unknown = set(outputs) - set(KNOWN_OUTPUTS)
    if unknown:
        parser.error(f"unknown outputs {sorted(unknown)}; musicnn has {', '.join(KNOWN_OUTPUTS)}")

    songs = read_manifest(args.manifest)
    if (songs["genres"].map(len) != 1).any():
        raise SystemExit("every clip needs exactly one genre")
    songs["genre"] = songs["genres"].map(lambda genres: genres[0])
    if args.limit_per_class:
        songs = songs.groupby("genre", sort=False).head(args.limit_per_class).reset_index(drop=True)
    labels = songs["genre"].to_numpy()
    groups = songs["artist"].to_numpy()
    per_class = songs.groupby("genre")["artist"].agg(["size", "nunique"])
    print(f"{len(songs)} clips, {len(set(groups))} groups, {len(per_class)} classes:")
    for genre, (clips, pieces) in per_class.iterrows():
        print(f"  {genre:<28} {clips:>4} clips, {pieces:>3} groups")
    print(f"chance level (1 / classes): {1 / len(per_class):.3f}")

    started = time.perf_counter()
    waveforms = decode_clips(list(songs["audio"]), args.clip_seconds)
    lengths = Counter(round(len(waveform) / SAMPLE_RATE, 2) for waveform in waveforms)
    seconds = time.perf_counter() - started
    print(f"decoded in {seconds:.1f} s; clips by seconds: {dict(sorted(lengths.items()))}")

    started = time.perf_counter()
    feature_sets = {BASELINE: np.stack([mfcc_statistics(w) for w in waveforms])}
    print(f"{BASELINE}: {len(waveforms) / (time.perf_counter() - started):.1f} songs/s")
    speeds = {}
    for encoder in encoders:
        embeddings, speeds[encoder], patch_counts = embed(encoder, waveforms, outputs)
        print(
            f"{encoder}: {speeds[encoder]:.1f} songs/s (batches of up to {BATCH_CLIPS} clips); "
            f"clips by patches: {dict(sorted(patch_counts.items()))}"
        )
        feature_sets |= {f"{encoder} {output}": embeddings[output] for output in outputs}

    print(
        f"\nlogistic regression, C from {C_GRID} by {INNER_FOLDS}-fold inner grouped CV; "
        f"{args.folds} outer folds grouped by artist, seed {args.seed}"
    )
    header = f"{'features':<30} {'width':>5}  {'accuracy':>13}  {'macro-F1':>13}  C per fold"
    print(header)
    print("-" * len(header))
    rows = []
    for name, features in feature_sets.items():
        row = {"features": name, **probe(features, labels, groups, args.folds, args.seed)}
        encoder = name.split()[0]
        row["encoder_songs_per_s"] = f"{speeds[encoder]:.1f}" if encoder in speeds else ""
        rows.append(row)
        print(
            f"{name:<30} {row['width']:>5}  {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}"
            f"  {row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f}  {row['C_per_fold']}",
            flush=True,
        )
    if args.csv:
        with open(args.csv, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"table written to {args.csv}")


if __name__ == "__main__":
    main()
