"""What the model adapts to the training split, counted once by `data_prep build`.

The audio normalisation needs per-dimension means and variances of the stored audio features over
the training songs (per mel bin over the frames of log-mels; per embedding dimension over the
patches of a pretrained audio encoder's embeddings), and the learned lyrics encoder needs the
training split's word counts. Counting them while the shards are written costs nothing; counting
them at the start of every training run and every tuning trial meant reading every training
example again (about 29 GB on Music4All). The shards directory holds:

- `STATISTICS_FILE` (JSON): training songs and log-mel frames counted, and per mel bin the mean
  and variance in dB over all frames of all training songs (what `keras.layers.Normalization
  (axis=1)` would adapt to): keys `songs`, `frames`, `log_mel_mean`, `log_mel_variance`,
  `distinct_words`. For embeddings shards `patches`, `audio_embeddings_mean` and
  `audio_embeddings_variance` (per embedding dimension, over the songs' valid patches) stand in
  for the three log-mel keys.
- `VOCABULARY_FILE`: one ``word<TAB>count`` line per distinct principal word of the training
  split, most frequent first (ties in code-point order), so any vocabulary size can be cut from it.

Statistics are accumulated per shard (`TrainStatistics.update`), saved with the shard's progress
record, and merged in the shards' order: a resumed build ends with the same files.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genre_fusion.files.atomic import write_atomically

STATISTICS_FILE = "train_statistics.json"
VOCABULARY_FILE = "vocabulary.tsv"
# The file's keys for the steps counted and the per-dimension mean and variance, per kind of audio.
LOG_MEL_KEYS = ("frames", "log_mel_mean", "log_mel_variance")
AUDIO_EMBEDDINGS_KEYS = ("patches", "audio_embeddings_mean", "audio_embeddings_variance")
# TextVectorization's reserved ids: 0 is padding, 1 the out-of-vocabulary token.
RESERVED_TOKENS = 2
WORD_SEPARATOR = " "


@dataclass
class TrainStatistics:
    """Running sums over training songs: `songs`; the time steps counted, `frames` (log-mel frames,
    or embedding patches), and per dimension (mel bin, or embedding dimension) the `sums` and
    `squares` of their values (float64 [dimensions]); `words`: principal word -> count."""

    songs: int = 0
    frames: int = 0
    sums: np.ndarray | None = None
    squares: np.ndarray | None = None
    words: collections.Counter = field(default_factory=collections.Counter)

    def update(self, audio_features: Iterable[np.ndarray], texts: Iterable[str]) -> None:
        """Add songs: `audio_features` [dimensions, steps] each (any float dtype): a log-mel
        [mel_bins, frames], or a song's valid audio embeddings transposed [width, patches]
        (`SongRecord.audio_features` is either); `texts` their principal words (space-separated,
        "" without lyrics)."""
        for features in audio_features:
            values = np.asarray(features, dtype=np.float64)
            if self.sums is None:
                self.sums = np.zeros(values.shape[0])
                self.squares = np.zeros(values.shape[0])
            self.sums += values.sum(axis=1)
            self.squares += np.square(values).sum(axis=1)
            self.frames += values.shape[1]
            self.songs += 1
        for text in texts:
            self.words.update(word for word in text.split(WORD_SEPARATOR) if word)

    def merge(self, other: TrainStatistics) -> None:
        self.songs += other.songs
        self.frames += other.frames
        if other.sums is not None:
            self.sums = other.sums.copy() if self.sums is None else self.sums + other.sums
            self.squares = other.squares.copy() if self.squares is None else self.squares + other.squares
        self.words.update(other.words)

    @property
    def mean(self) -> np.ndarray:
        """float64 [dimensions]: mean per dimension over all training steps (dB for log-mels)."""
        return self.sums / self.frames

    @property
    def variance(self) -> np.ndarray:
        """float64 [dimensions]: population variance per dimension (as Keras' Normalization adapts)."""
        return np.maximum(self.squares / self.frames - np.square(self.mean), 0.0)

    def summary(self) -> ShardStatistics:
        """What the model adapts to (float32 audio mean and variance, ranked words)."""
        empty = np.zeros(0, np.float32)
        return ShardStatistics(
            empty if self.sums is None else self.mean.astype(np.float32),
            empty if self.sums is None else self.variance.astype(np.float32),
            tuple(word for word, _ in self.ranked_words()),
        )

    def ranked_words(self) -> list[tuple[str, int]]:
        """(word, count), most frequent first, ties in code-point order: a stable vocabulary."""
        return sorted(self.words.items(), key=lambda item: (-item[1], item[0]))

    # ----------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        """Exact sums (a shard's progress record): merging reloaded parts gives the same floats."""
        return {
            "songs": self.songs,
            "frames": self.frames,
            "sums": None if self.sums is None else self.sums.tolist(),
            "squares": None if self.squares is None else self.squares.tolist(),
            "words": dict(self.ranked_words()),
        }

    @classmethod
    def from_dict(cls, values: dict) -> TrainStatistics:
        return cls(
            songs=values["songs"],
            frames=values["frames"],
            sums=_float64_or_none(values["sums"]),
            squares=_float64_or_none(values["squares"]),
            words=collections.Counter(values["words"]),
        )

    def write(self, shards_dir: str | Path, *, audio_embeddings: bool = False) -> None:
        """Write `STATISTICS_FILE` and `VOCABULARY_FILE` into `shards_dir`; with `audio_embeddings`
        (the shards of a pretrained audio encoder) under the embeddings' keys."""
        shards_dir = Path(shards_dir)
        steps, mean, variance = AUDIO_EMBEDDINGS_KEYS if audio_embeddings else LOG_MEL_KEYS
        summary = {
            "songs": self.songs,
            steps: self.frames,
            mean: [] if self.sums is None else self.mean.tolist(),
            variance: [] if self.sums is None else self.variance.tolist(),
            "distinct_words": len(self.words),
        }
        write_atomically(shards_dir / STATISTICS_FILE, json.dumps(summary, indent=1) + "\n")
        write_atomically(
            shards_dir / VOCABULARY_FILE, "".join(f"{word}\t{count}\n" for word, count in self.ranked_words())
        )


@dataclass(frozen=True)
class ShardStatistics:
    """What training reads back: the audio features' `mean` and `variance` per dimension
    ([mel_bins], or [audio_embedding_width] for embeddings shards) and the `ranked_words` of the
    training split."""

    mean: np.ndarray
    variance: np.ndarray
    ranked_words: Sequence[str]

    def vocabulary(self, size: int) -> list[str]:
        """The `size - RESERVED_TOKENS` most frequent words: a `TextVectorization(max_tokens=size)`
        vocabulary (the layer adds the padding and out-of-vocabulary tokens)."""
        return list(self.ranked_words[: max(size - RESERVED_TOKENS, 0)])


def read_statistics(shards_dir: str | Path) -> ShardStatistics | None:
    """The statistics `data_prep build` wrote into `shards_dir`; None for shards built before it
    wrote them (`genre_fusion.recipe.training_statistics` then counts them from the shards)."""
    shards_dir = Path(shards_dir)
    statistics_path, vocabulary_path = shards_dir / STATISTICS_FILE, shards_dir / VOCABULARY_FILE
    if not statistics_path.is_file() or not vocabulary_path.is_file():
        return None
    summary = json.loads(statistics_path.read_text(encoding="utf-8"))
    _, mean, variance = AUDIO_EMBEDDINGS_KEYS if AUDIO_EMBEDDINGS_KEYS[1] in summary else LOG_MEL_KEYS
    with open(vocabulary_path, encoding="utf-8", newline="\n") as handle:
        words = [line.split("\t", 1)[0] for line in handle if line.strip("\n")]
    return ShardStatistics(
        np.asarray(summary[mean], np.float32), np.asarray(summary[variance], np.float32), tuple(words)
    )


def _float64_or_none(values: list | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, np.float64)

