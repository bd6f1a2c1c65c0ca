"""Preparation speed and memory: the build's audio path against a serial librosa baseline.

    python bench/prep.py [--songs 600] [--unique 24] [--workers CORES] [--audio-encoder log-mel]

Writes UNIQUE synthetic 30 s stereo MP3s at 44.1 kHz, as Music4All's clips are (both sides
downmix and resample: to 22,050 Hz for log-mels, to the encoder's rate for a pretrained audio
encoder), and a manifest that lists SONGS songs cycling over them, so a long run costs little to
generate. On the same SONGS entries it times (1) what a user would write first for log-mels:
`librosa.load` + `melspectrogram` + `power_to_db`, one song after another, and (2) `data_prep
build --audio-encoder AUDIO_ENCODER` (decoding threads + batched log-mel in the graph, or the
pretrained encoder's embeddings; lyrics and TFRecord writing included), each twice, alternating,
and prints songs/s for both and their ratio (best of the two rounds). Runs with different
``--audio-encoder`` give preparation speeds per encoder side by side, against the same baseline.

The build is timed by stage: per decoding thread its busy fraction (decoding time / wall time),
and on the writing thread the time spent waiting for decoded songs, computing log-mels or audio
embeddings, principal words and text embeddings, and serializing and writing records: the
bottleneck is the stage near 100%. Then builds SONGS and 2 x SONGS songs, each in a fresh process,
and prints the peak resident memory of the largest process: flat when memory does not grow with
the collection.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from data_prep.song_loader import DEFAULT_WORKERS
from genre_fusion.features.config import LOG_MEL_ENCODER, FeatureConfig

CLIP_SECONDS = 30.0
SOURCE_RATE = 44_100
ARTISTS = 40
ROUNDS = 2
# The writing thread's stages, in the order they run.
WRITER_STAGES = (
    "wait for decoded songs",
    "log-mel",
    "audio embeddings",
    "principal words",
    "text embeddings",
    "serialize",
)
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


def make_stereo(collection: Path) -> None:
    """Rewrite the collection's mono MP3s as stereo ones (the right channel delayed by 7 ms)."""
    for path in sorted((collection / "audios").glob("*.mp3")):
        mono, rate = sf.read(path, dtype="float32")
        right = np.roll(mono, int(0.007 * rate)) * 0.8
        sf.write(path, np.stack([mono, right], axis=1), rate)


class StageClock:
    """Wall seconds spent in each stage of a build, summed per thread (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds = collections.defaultdict(float)  # (stage, thread id) -> seconds

    @contextlib.contextmanager
    def timing(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage, threading.get_ident()] += time.perf_counter() - started

    def wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            with self.timing(stage):
                return function(*args, **kwargs)

        return timed

    def wrap_iterator(self, stage: str, function):
        """`function` returns an iterator: time each `next` of it."""

        def timed(*args, **kwargs):
            iterator = function(*args, **kwargs)
            while True:
                with self.timing(stage):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item

        return timed

    def per_thread(self, stage: str) -> list[float]:
        return [seconds for (name, _), seconds in sorted(self.seconds.items()) if name == stage]

    def total(self, stage: str) -> float:
        return sum(self.per_thread(stage))


@contextlib.contextmanager
def instrumented_build(clock: StageClock):
    """The builder with each stage timed by `clock` (the bench's view; the builder is unchanged).

    Each function is replaced in the module that looks it up when the build runs.
    """
    from data_prep import builder, featurizer, shard_writer

    patched = (
        (builder, "load_song", "decode", clock.wrap),
        (featurizer, "principal_words", "principal words", clock.wrap),
        (shard_writer, "serialize_song", "serialize", clock.wrap),
        (builder, "_bounded_map", "wait for decoded songs", clock.wrap_iterator),
    )
    originals = {(module, name): getattr(module, name) for module, name, _, _ in patched}
    featurizer_init = featurizer.SongFeaturizer.__init__

    def timed_init(self, *args, **kwargs):
        featurizer_init(self, *args, **kwargs)
        if self.audio_encoder is None:
            self._log_mel = clock.wrap("log-mel", self._log_mel)
        else:
            self.audio_encoder.embed = clock.wrap("audio embeddings", self.audio_encoder.embed)
        if self.text_encoder is not None:
            self.text_encoder.embed = clock.wrap("text embeddings", self.text_encoder.embed)

    for module, name, stage, wrap in patched:
        setattr(module, name, wrap(stage, originals[module, name]))
    featurizer.SongFeaturizer.__init__ = timed_init
    try:
        yield
    finally:
        for (module, name), original in originals.items():
            setattr(module, name, original)
        featurizer.SongFeaturizer.__init__ = featurizer_init


def print_stages(clock: StageClock, wall: float, songs: int) -> None:
    busy = ", ".join(f"{seconds / wall:.0%}" for seconds in clock.per_thread("decode"))
    print(f"  decoding threads busy: {busy} of the build's {wall:.1f} s")
    print("  writing thread, ms per song:")
    # Only the stages this build has: log-mel or audio embeddings, text embeddings with a hub module.
    seconds = {stage: clock.total(stage) for stage in WRITER_STAGES if clock.per_thread(stage)}
    seconds["other (write, progress)"] = wall - sum(seconds.values())
    for stage, spent in seconds.items():
        print(f"    {stage:24s} {1000 * spent / songs:7.2f}   ({spent / wall:.0%} of wall)")


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


def peak_memory_mib(manifest: Path, out: Path, workers: int, audio_encoder: str) -> float:
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
        "--audio-encoder",
        audio_encoder,
        "--quiet",
    ]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *build], check=True, capture_output=True, text=True
    )
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    from data_prep.build_config import BuildConfig
    from data_prep.build_error import BuildError
    from data_prep.builder import build_shards
    from data_prep.featurizer import load_audio_encoder
    from data_prep.synth import write_demo_collection
    from genre_fusion.encoders.handles import ModuleUnavailable

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--songs", type=int, default=600)
    parser.add_argument("--unique", type=int, default=24, help="distinct MP3 files written")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument(
        "--audio-encoder",
        default=LOG_MEL_ENCODER,
        help=f"what the build stores: {LOG_MEL_ENCODER}, or a pretrained encoder as data_prep build takes it",
    )
    args = parser.parse_args()

    baseline_features = FeatureConfig(clip_seconds=CLIP_SECONDS)
    features = FeatureConfig(clip_seconds=CLIP_SECONDS, audio_encoder=args.audio_encoder)
    try:  # once before any work, to refuse a bad encoder at once; each build loads its own
        load_audio_encoder(features)
    except (BuildError, ModuleUnavailable) as error:
        parser.error(str(error))
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
        make_stereo(collection)
        manifest = write_manifest(collection, args.songs)
        paths = [collection / audio for audio in pd.read_csv(manifest)["audio"]]

        librosa_baseline(paths[:2], baseline_features)  # numba compiles on first use: not timed
        baselines, builds = [], []
        for round_ in range(ROUNDS):
            started = time.perf_counter()
            librosa_baseline(paths, baseline_features)
            baselines.append(args.songs / (time.perf_counter() - started))

            clock = StageClock()
            config = BuildConfig(
                out=str(Path(tmp) / f"shards-{round_}"), manifest=str(manifest), features=features
            )
            with instrumented_build(clock):
                started = time.perf_counter()
                build_shards(config, workers=args.workers, progress=False)
                wall = time.perf_counter() - started
            builds.append(args.songs / wall)
            print(f"round {round_ + 1}: librosa {baselines[-1]:.2f} songs/s, build {builds[-1]:.2f} songs/s")
            print_stages(clock, wall, args.songs)

        baseline, build = max(baselines), max(builds)
        print(
            f"{args.songs} songs x {CLIP_SECONDS:.0f} s stereo MP3 at {SOURCE_RATE} Hz, "
            f"{os.cpu_count()} cores"
        )
        print(f"librosa serial log-mel baseline   {baseline:7.2f} songs/s")
        ratio = build / baseline
        print(
            f"data_prep build --audio-encoder {args.audio_encoder} ({args.workers} threads) "
            f"{build:7.2f} songs/s   ratio {ratio:.2f}x"
        )
        for songs in (args.songs, 2 * args.songs):
            listing = write_manifest(collection, songs)
            out = Path(tmp) / f"memory-{songs}"
            memory = peak_memory_mib(listing, out, args.workers, args.audio_encoder)
            print(f"peak RSS of a build of {songs:5d} songs: {memory:6.0f} MiB")


if __name__ == "__main__":
    main()
