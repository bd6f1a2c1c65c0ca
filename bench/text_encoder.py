"""Benchmark: lyrics embedding throughput and the disk cost of ELMo-sized embeddings in the shards.

    python bench/text_encoder.py [--songs N] [--tokens T] [--width W] [--batch-size B]

No TF Hub download works offline, so this embeds N synthetic principal-word texts of T words
through `HubTextEncoder` on a stand-in with ELMo's interface and width (tests/hub_standins.py: a
TF1 Hub module with reference variables and a recurrent loop, loaded like ELMo). It prints:

- songs/s of embedding. The stand-in's speed is NOT ELMo's: ELMo runs a character CNN and a
  2-layer biLSTM (4096 cells, projected to 512) per word, far more work than the stand-in's one
  matrix product per layer. Read the figure as an upper bound; time the real module with
  ``--module PATH`` (an unpacked ELMo folder) where one is at hand.
- bytes per song of the float16 embeddings as a shard stores them (`genre_fusion.data.schema`'s
  example without log-mel, written to a TFRecord file and measured on disk). This
  figure is exact for any module of that width: it depends on tokens x width only.
- the projected disk for Music4All's English songs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensorflow as tf  # noqa: E402

from genre_fusion.data.schema import SongRecord, serialize_song  # noqa: E402
from genre_fusion.encoders.text import DEFAULT_BATCH_SIZE, HubTextEncoder  # noqa: E402
from tests.hub_standins import build_tf1_standin  # noqa: E402

ELMO_WIDTH = 1024
MUSIC4ALL_ENGLISH_SONGS = 84_103  # id_lang.csv: lang == "en"
FLOAT16_BYTES = 2
VOCABULARY = 5_000
SEED = 0


def synthetic_texts(songs: int, tokens: int) -> list[str]:
    """`songs` texts of `tokens` lower-case words each, drawn Zipf-like from a fixed vocabulary,
    the shape of the principal-word reduction's output."""
    rng = np.random.default_rng(SEED)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(VOCABULARY)]
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    weights /= weights.sum()
    return [" ".join(rng.choice(vocabulary, tokens, p=weights)) for _ in range(songs)]


def embedding_record(vectors: np.ndarray) -> bytes:
    """float32 [tokens, width] -> a shard's serialized song with these embeddings and no log-mel,
    written by the shard schema itself (so the figure is the embeddings' share of a song)."""
    song = SongRecord(
        id="song",
        artist="",
        log_mel=np.zeros((0, 0), np.float16),
        audio_seconds=0.0,
        words="",
        labels=(0,),
        embeddings=vectors,
    )
    return serialize_song(song)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=200, help="synthetic songs to embed (200)")
    parser.add_argument("--tokens", type=int, default=200, help="words per song, the cap (200)")
    parser.add_argument("--width", type=int, default=ELMO_WIDTH, help="embedding width (1024 = ELMo)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--module", default=None, help="time this module instead of a stand-in")
    args = parser.parse_args(argv)

    texts = synthetic_texts(args.songs, args.tokens)
    with tempfile.TemporaryDirectory() as scratch:
        module = args.module or str(build_tf1_standin(Path(scratch) / "elmo_standin", width=args.width))
        encoder = HubTextEncoder(module, batch_size=args.batch_size)  # loads and probes once
        encoder.embed(texts[: args.batch_size])  # warm-up: first-call tracing and allocation
        encoder.calls = 0
        start = time.perf_counter()
        vectors = encoder.embed(texts)
        seconds = time.perf_counter() - start
        assert encoder.calls == args.songs and all(len(v) == args.tokens for v in vectors)

        shard = Path(scratch) / "embeddings.tfrecord"
        with tf.io.TFRecordWriter(str(shard)) as writer:
            for song in vectors:
                writer.write(embedding_record(song))
        per_song = shard.stat().st_size / args.songs

    payload = args.tokens * encoder.width * FLOAT16_BYTES
    words = args.songs * args.tokens
    source = f"module {args.module}" if args.module else "stand-in (TF1 hub module, reference variables)"
    print(f"text encoder: {source}, width {encoder.width}, batch {args.batch_size}")
    print(f"songs: {args.songs} synthetic principal-word texts x {args.tokens} words")
    print(
        f"embedding: {seconds:.2f} s = {args.songs / seconds:,.1f} songs/s ({words / seconds:,.0f} words/s)"
        + ("" if args.module else "  <- stand-in speed: an upper bound, not ELMo's")
    )
    print(
        f"shard bytes: {per_song:,.0f} B/song in a TFRecord = {args.tokens} x {encoder.width} x "
        f"{FLOAT16_BYTES} B float16 ({payload:,} B) + {per_song - payload:,.0f} B of record framing and ids"
    )
    total = per_song * MUSIC4ALL_ENGLISH_SONGS
    print(
        f"Music4All ({MUSIC4ALL_ENGLISH_SONGS:,} English songs at {args.tokens} words): "
        f"{total / 1e9:,.1f} GB of embeddings; it scales with the mean words per song "
        f"({encoder.width * FLOAT16_BYTES:,} B per word)"
    )
    if not args.module:
        print(
            "note: ELMo (char CNN + 2-layer biLSTM of 4096 cells per direction) costs far more per word "
            "than this stand-in: the songs/s above bounds ELMo's from above (time it with --module); "
            "the bytes per song are exact for any module of this width."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
