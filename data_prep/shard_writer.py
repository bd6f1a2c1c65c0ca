"""Writing one planned shard: decoded songs -> a TFRecord file and its record in `_progress/`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import tensorflow as tf
from tqdm.auto import tqdm

from data_prep.featurizer import BATCH_SIZE, SongFeaturizer
from data_prep.plan import TRAIN_SPLIT, ShardPlan
from data_prep.progress import write_shard_record
from data_prep.song_loader import LoadedSong, Rejection
from genre_fusion.data.schema import serialize_song
from genre_fusion.data.train_statistics import TrainStatistics


def write_shard(
    out: Path,
    shard: ShardPlan,
    results: Iterator[LoadedSong | Rejection],
    featurize: SongFeaturizer,
    progress: tqdm,
    rejected_before: int,
) -> dict:
    """Take the next `len(shard.tasks)` decoding results, write the songs to `out/<shard.name>`
    (under a temporary name, renamed when complete) and return the shard's record as written.

    The record holds the split, the written ids and labels, the rejections (as dicts), the plan's
    fingerprint, the file's size and, for a train shard, its `TrainStatistics` as a dict.
    """
    written, labels, rejected, batch = [], [], [], []
    # What the model adapts to is counted here, once, instead of at the start of every run.
    statistics = TrainStatistics() if shard.split == TRAIN_SPLIT else None
    temporary = out / f"{shard.name}.tmp"
    with tf.io.TFRecordWriter(str(temporary)) as writer:

        def flush():
            records = featurize(batch)
            for record in records:
                writer.write(serialize_song(record))
                written.append(record.id)
                labels.append(list(record.labels))
            if statistics is not None:
                audio = [song.audio_features for song in records]  # log-mels or embeddings, per dimension
                statistics.update(audio, [song.words for song in records])
            batch.clear()

        for _ in shard.tasks:
            result = next(results)
            if isinstance(result, Rejection):
                rejected.append(asdict(result))
            else:
                batch.append(result)
                if len(batch) == BATCH_SIZE:
                    flush()
            progress.update(1)
            progress.set_postfix(rejected=rejected_before + len(rejected), refresh=False)
        if batch:
            flush()
    temporary.replace(out / shard.name)
    record = {
        "split": shard.split,
        "ids": written,
        "labels": labels,
        "rejected": rejected,
        "fingerprint": shard.fingerprint,
        "size": (out / shard.name).stat().st_size,
        "statistics": None if statistics is None else statistics.to_dict(),
    }
    write_shard_record(out, shard.name, record)
    return record
