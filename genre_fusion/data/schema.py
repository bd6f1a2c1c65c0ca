"""The per-song TFRecord example: one module for the shard writer and the training reader.

Features of one serialized `tf.train.Example`:

| key             | type          | content                                                    |
|-----------------|---------------|------------------------------------------------------------|
| `id`            | bytes         | song id                                                    |
| `artist`        | bytes         | grouping key of the split                                  |
| `log_mel`       | bytes         | float16 [mel_bins, frames], row-major                      |
| `audio_seconds` | float         | real audio length before zero-padding                      |
| `words`         | bytes         | principal-word text, space-separated ("" without lyrics)   |
| `embeddings`    | bytes         | float16 [tokens, embedding_width] ("" with `learned`)      |
| `tokens`        | int64         | rows of `embeddings` (0 for a song without lyrics)         |
| `labels`        | int64 list    | genre indices into the vocabulary of meta.json             |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from genre_fusion.features.config import FeatureConfig

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SongRecord:
    """One prepared song. `log_mel`: [mel_bins, frames]; `embeddings`: [tokens, width] or None."""

    id: str
    artist: str
    log_mel: np.ndarray
    audio_seconds: float
    words: str
    labels: tuple[int, ...]
    embeddings: np.ndarray | None = None


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def serialize_song(song: SongRecord) -> bytes:
    """A `SongRecord` -> serialized `tf.train.Example` bytes (features stored as float16)."""
    embeddings = song.embeddings
    tokens = 0 if embeddings is None else int(embeddings.shape[0])
    feature = {
        "id": _bytes(song.id.encode("utf-8")),
        "artist": _bytes(song.artist.encode("utf-8")),
        "log_mel": _bytes(np.ascontiguousarray(song.log_mel, dtype=np.float16).tobytes()),
        "audio_seconds": tf.train.Feature(float_list=tf.train.FloatList(value=[song.audio_seconds])),
        "words": _bytes(song.words.encode("utf-8")),
        "embeddings": _bytes(
            b"" if embeddings is None else np.ascontiguousarray(embeddings, dtype=np.float16).tobytes()
        ),
        "tokens": _ints([tokens]),
        "labels": _ints(song.labels),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


FEATURE_SPEC = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "artist": tf.io.FixedLenFeature([], tf.string),
    "log_mel": tf.io.FixedLenFeature([], tf.string),
    "audio_seconds": tf.io.FixedLenFeature([], tf.float32),
    "words": tf.io.FixedLenFeature([], tf.string),
    "embeddings": tf.io.FixedLenFeature([], tf.string),
    "tokens": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def parse_song(serialized: tf.Tensor, features: FeatureConfig) -> dict[str, tf.Tensor]:
    """One serialized example -> tensors: `log_mel` float16 [mel_bins, frames], `words` string,
    `embeddings` float16 [max_tokens, width] zero-padded (only with a hub encoder), `tokens` int32,
    `labels` int64 [n], plus `id`, `artist`, `audio_seconds`."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    song = {
        "id": parsed["id"],
        "artist": parsed["artist"],
        "audio_seconds": parsed["audio_seconds"],
        "words": parsed["words"],
        "tokens": tf.cast(parsed["tokens"], tf.int32),
        "labels": tf.sparse.to_dense(parsed["labels"]),
        "log_mel": tf.reshape(
            tf.io.decode_raw(parsed["log_mel"], tf.float16), [features.mel_bins, features.frames]
        ),
    }
    if features.uses_embeddings:
        vectors = tf.reshape(
            tf.io.decode_raw(parsed["embeddings"], tf.float16), [-1, features.embedding_width]
        )
        vectors = vectors[: features.max_tokens]
        padding = features.max_tokens - tf.shape(vectors)[0]
        song["embeddings"] = tf.ensure_shape(
            tf.pad(vectors, [[0, padding], [0, 0]]), [features.max_tokens, features.embedding_width]
        )
    return song
