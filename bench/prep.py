"""Preparation speed and memory: the build's audio path against a serial librosa baseline.

    python bench/prep.py [--songs 600] [--unique 24] [--workers CORES]

Writes UNIQUE synthetic 30 s MP3s at 44.1 kHz (both sides resample to 22,050 Hz) and a manifest
that lists SONGS songs cycling over them, so a long run costs little to generate. On the same
SONGS entries it times (1) `data_prep build` (decoding threads + batched log-mel in the graph,
lyrics and TFRecord writing included) and (2) what a user would write first: `librosa.load` +
`melspectrogram` + `power_to_db`, one song after another. Prints songs/s for both and the ratio.
Then builds SONGS and 2 x SONGS songs, each in a fresh process, and prints the peak resident
memory of the largest process: flat when memory does not grow with the collection.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from data_prep.song_loader import DEFAULT_WORKERS
from genre_fusion.features import FeatureConfig

CLIP_SECONDS = 30.0
SOURCE_RATE = 44_100
ARTISTS = 40
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def write_manifest(collection: Path, songs: int) -> Path:
    """A manifest of `songs` entries cycling over the collection's MP3s and lyrics."""
    genres = pd.read_csv(collection / "id_genres.csv", sep="\t")
    rows = [
        {
            "id": f"song{index:06d}",
            "audio": f"audios/{song_id}.mp3",
            "lyrics": f"lyrics/{song_id}.txt",
            "genres": names,
            "artist": f"artist{index % ARTISTS}",
        }
        for index, (song_id, names) in enumerate(
            (genres["id"][i % len(genres)], genres["genres"][i % len(genres)]) for i in range(songs)
        )
    ]
    path = collection / f"manifest-{songs}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def librosa_baseline(paths: list[Path], features: FeatureConfig) -> None:
    import librosa

    for path in paths:
        waveform, _ = librosa.load(path, sr=features.sample_rate, mono=True, duration=features.clip_seconds)
        power = librosa.feature.melspectrogram(
            y=waveform,
            sr=features.sample_rate,
            n_fft=features.n_fft,
            hop_length=features.hop_length,
            n_mels=features.mel_bins,
        )
        librosa.power_to_db(power, top_db=80.0)


def peak_memory_mib(manifest: Path, out: Path, workers: int) -> float:
    """Peak RSS of a build run in a fresh process."""
    build = [
        sys.executable,
        "-m",
        "data_prep",
        "build",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--clip-seconds",
        str(CLIP_SECONDS),
        "--workers",
        str(workers),
        "--quiet",
    ]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *build], check=True, capture_output=True, text=True
    )
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    from data_prep.builder import BuildConfig, build_shards
    from data_prep.synth import write_demo_collection

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--songs", type=int, default=600)
    parser.add_argument("--unique", type=int, default=24, help="distinct MP3 files written")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    args = parser.parse_args()

    features = FeatureConfig(clip_seconds=CLIP_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        collection = Path(tmp) / "music4all"
        print(f"writing {args.unique} synthetic {CLIP_SECONDS:.0f} s MP3s at {SOURCE_RATE} Hz ...")
        write_demo_collection(
            collection,
            songs=args.unique,
            genres=4,
            seconds=CLIP_SECONDS,
            sample_rate=SOURCE_RATE,
            progress=False,
        )
        manifest = write_manifest(collection, args.songs)
        paths = [collection / audio for audio in pd.read_csv(manifest)["audio"]]

        librosa_baseline(paths[:2], features)  # numba compiles on first use: not part of the timing
        started = time.perf_counter()
        librosa_baseline(paths, features)
        baseline = args.songs / (time.perf_counter() - started)

        started = time.perf_counter()
        config = BuildConfig(out=str(Path(tmp) / "shards"), manifest=str(manifest), features=features)
        build_shards(config, workers=args.workers, progress=False)
        build = args.songs / (time.perf_counter() - started)

        print(f"{args.songs} songs x {CLIP_SECONDS:.0f} s MP3 at {SOURCE_RATE} Hz, {os.cpu_count()} cores")
        print(f"librosa serial baseline          {baseline:7.2f} songs/s")
        ratio = build / baseline
        print(f"data_prep build ({args.workers} threads)       {build:7.2f} songs/s   ratio {ratio:.2f}x")
        for songs in (args.songs, 2 * args.songs):
            memory = peak_memory_mib(
                write_manifest(collection, songs), Path(tmp) / f"memory-{songs}", args.workers
            )
            print(f"peak RSS of a build of {songs:5d} songs: {memory:6.0f} MiB")


if __name__ == "__main__":
    main()
