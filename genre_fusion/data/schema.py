"""The per-song TFRecord example: one module for the shard writer and the training reader.

Features of one serialized `tf.train.Example`:

| key                | type       | content                                                               |
|--------------------|------------|-----------------------------------------------------------------------|
| `id`               | bytes      | song id                                                               |
| `artist`           | bytes      | grouping key of the split                                             |
| `log_mel`          | bytes      | float16 [mel_bins, frames], row-major ("" with a pretrained encoder)  |
| `audio_seconds`    | float      | real audio length before zero-padding                                 |
| `audio_embeddings` | bytes      | float16 [patches, audio_embedding_width] (absent with `log-mel`: "")  |
| `audio_patches`    | int64      | rows of `audio_embeddings` (absent with `log-mel`: 0)                 |
| `words`            | bytes      | principal-word text, space-separated ("" without lyrics)              |
| `embeddings`       | bytes      | float16 [tokens, embedding_width] ("" with `learned`)                 |
| `tokens`           | int64      | rows of `embeddings` (0 for a song without lyrics)                    |
| `labels`           | int64 list | genre indices into the vocabulary of meta.json                        |

Format version 2 added `audio_embeddings` and `audio_patches`, written only with a pretrained
audio encoder: a log-mel song's example is byte for byte what version 1 wrote, and version-1
shards parse unchanged (the two keys default to "" and 0). meta.json says version 2 for every new
build all the same, so that a version-1 reader refuses new shards with its "rebuild" message
instead of failing on the new feature settings in meta.json (or on shards without log-mels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from genre_fusion.features.config import FeatureConfig

FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, FORMAT_VERSION)


@dataclass(frozen=True)
class SongRecord:
    """One prepared song: its audio as `log_mel` [mel_bins, frames] or, for shards of a pretrained
    audio encoder, as `audio_embeddings` [patches, width] (the patches of the song's audio, at most
    `FeatureConfig.audio_patches`), never both; `embeddings`: [tokens, width] or None."""

    id: str
    artist: str
    log_mel: np.ndarray | None
    audio_seconds: float
    words: str
    labels: tuple[int, ...]
    embeddings: np.ndarray | None = None
    audio_embeddings: np.ndarray | None = None

    def __post_init__(self):
        if (self.log_mel is None) == (self.audio_embeddings is None):
            raise ValueError(f"song {self.id} needs its log-mel or its audio embeddings (one of them)")

    @property
    def audio_features(self) -> np.ndarray:
        """The stored audio, one row per dimension: the log-mel [mel_bins, frames] or the audio
        embeddings transposed [width, patches] (what `TrainStatistics.update` counts)."""
        return self.log_mel if self.audio_embeddings is None else self.audio_embeddings.T


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float16_bytes(array: np.ndarray | None) -> bytes:
    return b"" if array is None else np.ascontiguousarray(array, dtype=np.float16).tobytes()


def _rows(array: np.ndarray | None) -> int:
    return 0 if array is None else int(array.shape[0])


def serialize_song(song: SongRecord) -> bytes:
    """A `SongRecord` -> serialized `tf.train.Example` bytes (features stored as float16)."""
    feature = {
        "id": _bytes(song.id.encode("utf-8")),
        "artist": _bytes(song.artist.encode("utf-8")),
        "log_mel": _bytes(_float16_bytes(song.log_mel)),
        "audio_seconds": tf.train.Feature(float_list=tf.train.FloatList(value=[song.audio_seconds])),
        "words": _bytes(song.words.encode("utf-8")),
        "embeddings": _bytes(_float16_bytes(song.embeddings)),
        "tokens": _ints([_rows(song.embeddings)]),
        "labels": _ints(song.labels),
    }
    if song.audio_embeddings is not None:
        feature["audio_embeddings"] = _bytes(_float16_bytes(song.audio_embeddings))
        feature["audio_patches"] = _ints([_rows(song.audio_embeddings)])
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


FEATURE_SPEC = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "artist": tf.io.FixedLenFeature([], tf.string),
    "log_mel": tf.io.FixedLenFeature([], tf.string),
    "audio_seconds": tf.io.FixedLenFeature([], tf.float32),
    # Defaults: log-mel songs (and version-1 shards) have no such keys.
    "audio_embeddings": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "audio_patches": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "words": tf.io.FixedLenFeature([], tf.string),
    "embeddings": tf.io.FixedLenFeature([], tf.string),
    "tokens": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def _padded_rows(raw: tf.Tensor, rows: int, width: int) -> tf.Tensor:
    """float16 bytes of [n, width] -> float16 [rows, width]: the first `rows`, zero-padded."""
    vectors = tf.reshape(tf.io.decode_raw(raw, tf.float16), [-1, width])[:rows]
    return tf.ensure_shape(tf.pad(vectors, [[0, rows - tf.shape(vectors)[0]], [0, 0]]), [rows, width])


def parse_song(serialized: tf.Tensor, features: FeatureConfig) -> dict[str, tf.Tensor]:
    """One serialized example -> tensors: the audio as `log_mel` float16 [mel_bins, frames] or,
    with a pretrained audio encoder, `audio_embeddings` float16 [audio_patches, width] zero-padded
    and `audio_patches` int32 (valid rows); `words` string, `embeddings` float16 [max_tokens, width]
    zero-padded (only with a hub text encoder), `tokens` int32, `labels` int64 [n], plus `id`,
    `artist`, `audio_seconds`."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    song = {
        "id": parsed["id"],
        "artist": parsed["artist"],
        "audio_seconds": parsed["audio_seconds"],
        "words": parsed["words"],
        "tokens": tf.cast(parsed["tokens"], tf.int32),
        "labels": tf.sparse.to_dense(parsed["labels"]),
    }
    if features.uses_audio_embeddings:
        song["audio_embeddings"] = _padded_rows(
            parsed["audio_embeddings"], features.audio_patches, features.audio_embedding_width
        )
        song["audio_patches"] = tf.cast(parsed["audio_patches"], tf.int32)
    else:
        song["log_mel"] = tf.reshape(
            tf.io.decode_raw(parsed["log_mel"], tf.float16), [features.mel_bins, features.frames]
        )
    if features.uses_embeddings:
        song["embeddings"] = _padded_rows(parsed["embeddings"], features.max_tokens, features.embedding_width)
    return song
