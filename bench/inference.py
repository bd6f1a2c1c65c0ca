"""Inference speed of an exported genre model on this machine's CPU, and where a song's time goes.

    python bench/inference.py MODEL_DIR [--songs 32] [--repeats 30] [--seconds 30]

MODEL_DIR is a folder written by `python -m genre_fusion.export` (`make demo` leaves one at
demo/model). The songs are the demo generator's (`data_prep.synth`): SONGS synthetic MP3s of
SECONDS s (default 30 s, Music4All's clip length) at 44.1 kHz with their lyrics, written to a
temporary folder. Decoding reads only the model's clip length of each file (features.json), so
for a model of 10 s clips a "song" costs the decode of its first 10 s.

1. One song at batch 1, REPEATS times, p50 and p95 of each stage:
   - decode: `genre_fusion.audio.decode_audio` (MP3 decode, resampling to the model's rate);
   - features: the SavedModel's ``features`` signature (log-mel, principal words, and the hub
     text encoder if the model has one);
   - model: its ``classify`` signature on those features;
   - serving_default: features and model in the one graph a client calls;
   - end to end: decode + serving_default.
   ``features`` and ``classify`` are the two halves of ``serving_default`` (see
   `genre_fusion.serving.server`), so the split is of the exported graph itself.
2. Songs/s at batch 1 and batch 32: of serving_default on decoded waveforms, and of the path of
   `python -m genre_fusion.predict` (decoding in threads + serving_default).
Every function is called once per batch size before it is timed: the first call at a new batch
size is much slower (graph optimisation, STFT kernel set-up); that one-off cost is printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from data_prep.sources import read_music4all
from data_prep.synth import write_demo_collection
from genre_fusion.features.audio import decode_audio
from genre_fusion.serving.layout import (
    CLASSIFY_SIGNATURE,
    FEATURES_SIGNATURE,
    LYRICS,
    SERVING_SIGNATURE,
    WAVEFORM,
)
from genre_fusion.serving.predict import ExportedModel, Song, predict

SOURCE_RATE = 44_100
DEMO_GENRES = 4
BATCH_SIZES = (1, 32)
PERCENTILES = (50, 95)
TOP_K = 3
PREDICT_RUNS = 3  # timed runs of the predict path over all songs (the median is printed)


def write_songs(folder: Path, count: int, seconds: float) -> list[Song]:
    """`count` demo songs (MP3 at `SOURCE_RATE`, lyrics files; a few instrumental)."""
    songs = max(count, 2 * DEMO_GENRES)  # the generator's minimum
    write_demo_collection(
        folder, songs=songs, genres=DEMO_GENRES, seconds=seconds, sample_rate=SOURCE_RATE, progress=False
    )
    table = read_music4all(folder).head(count)
    return [Song(row.id, row.audio, row.lyrics) for row in table.itertuples(index=False)]


def timed(function: Callable[[], object], repeats: int) -> np.ndarray:
    """Seconds of each of `repeats` calls."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def first_call_seconds(function: Callable[[], object]) -> float:
    return float(timed(function, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path, help="folder written by python -m genre_fusion.export")
    parser.add_argument("--songs", type=int, default=32, help="distinct songs written (default 32)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per stage (default 30)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each song (default 30)")
    args = parser.parse_args()

    model = ExportedModel(args.model_dir)
    features = model.features
    signatures = model.saved_model.signatures
    serve = signatures[SERVING_SIGNATURE]
    compute_features = signatures[FEATURES_SIGNATURE]
    classify = signatures[CLASSIFY_SIGNATURE]

    with tempfile.TemporaryDirectory() as tmp:
        print(f"writing {args.songs} demo songs of {args.seconds:g} s, MP3 at {SOURCE_RATE} Hz ...")
        songs = write_songs(Path(tmp) / "songs", args.songs, args.seconds)
        loaded = [model.load(song) for song in songs]
        waveforms = np.stack([waveform for waveform, _ in loaded])
        lyrics = [text for _, text in loaded]

        def batch(size: int) -> dict[str, tf.Tensor]:
            rows = np.arange(size) % len(songs)
            return {WAVEFORM: tf.constant(waveforms[rows]), LYRICS: tf.constant([lyrics[i] for i in rows])}

        one = batch(1)
        cold = {size: first_call_seconds(lambda size=size: serve(**batch(size))) for size in BATCH_SIZES}
        one_features = compute_features(**one)
        classify(**one_features)  # warm-up

        def decode():
            decode_audio(songs[0].audio, features.sample_rate, features.clip_seconds)

        stages = {
            f"decode (MP3 -> {features.sample_rate} Hz mono, {features.clip_seconds:g} s)": timed(
                decode, args.repeats
            ),
            "features (features signature)": timed(lambda: compute_features(**one), args.repeats),
            "model (classify signature)": timed(lambda: classify(**one_features), args.repeats),
            "serving_default (features + model)": timed(lambda: serve(**one), args.repeats),
        }
        stages["end to end (decode + serving_default)"] = timed(
            lambda: (decode(), serve(**one)), args.repeats
        )

        throughput = {}
        for size in BATCH_SIZES:
            inputs = batch(size)
            calls = max(3, args.repeats // size)
            throughput[f"serving_default, batch {size}"] = size / np.median(
                timed(lambda i=inputs: serve(**i), calls)
            )
        listed = [songs[i % len(songs)] for i in range(max(max(BATCH_SIZES), len(songs)))]
        for size in BATCH_SIZES:
            list(predict(model, listed[:size], TOP_K, size))  # warm-up of this batch size
            seconds = np.median(
                timed(lambda size=size: list(predict(model, listed, TOP_K, size)), PREDICT_RUNS)
            )
            throughput[f"predict path (threaded decode + serving_default), batch {size}"] = (
                len(listed) / seconds
            )

    print(
        f"\nmodel {args.model_dir}: clip {features.clip_seconds:g} s at {features.sample_rate} Hz, "
        f"{features.mel_bins} mel bins, text encoder {features.text_encoder}; {len(model.genres)} genres"
    )
    print(f"CPU: {os.cpu_count()} cores, TensorFlow {tf.__version__}\n")
    print(f"{'one song, batch 1':<64}" + "".join(f"{f'p{p} ms':>10}" for p in PERCENTILES))
    for name, seconds in stages.items():
        print(f"  {name:<62}" + "".join(f"{np.percentile(seconds, p) * 1000:10.1f}" for p in PERCENTILES))
    slowest = max(list(stages)[:3], key=lambda name: np.median(stages[name]))
    print(f"  slowest stage: {slowest.split(' (')[0]}\n")
    print(f"{'throughput':<64}{'songs/s':>10}")
    for name, rate in throughput.items():
        print(f"  {name:<62}{rate:10.1f}")
    print(
        "\nfirst call at a new batch size (one-off): "
        + ", ".join(f"batch {size}: {seconds:.2f} s" for size, seconds in cold.items())
    )


if __name__ == "__main__":
    main()
