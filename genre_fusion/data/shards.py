"""The shards directory: `meta.json`, `splits.csv`, `rejected.csv` and sharded TFRecords.

`meta.json` is written last by `data_prep build`, so its presence means the set is complete.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genre_fusion.data.schema import FORMAT_VERSION, READABLE_FORMAT_VERSIONS
from genre_fusion.features.config import FeatureConfig
from genre_fusion.files.atomic import write_atomically

META_FILE = "meta.json"
SPLITS_FILE = "splits.csv"
REJECTED_FILE = "rejected.csv"
SPLITS = ("train", "val", "test")
LABEL_MODES = ("single", "multi")


class ShardsError(ValueError):
    """A shards directory that cannot be read; the message names the problem and the fix."""


@dataclass(frozen=True)
class ShardsMeta:
    """Everything a reader needs to interpret the shards; saved as meta.json."""

    genres: tuple[str, ...]
    label_mode: str
    features: FeatureConfig
    split_sizes: dict[str, int] = field(default_factory=dict)
    shard_counts: dict[str, int] = field(default_factory=dict)
    genre_counts: dict[str, list[int]] = field(default_factory=dict)  # songs per genre, per split
    rejected: dict[str, int] = field(default_factory=dict)
    lyrics_missing: int = 0  # kept songs whose listed lyrics file does not exist (instrumental ones excluded)
    source: str = ""
    seed: int = 0
    # The protocol preset the build started from ("" for shards of earlier versions), the options
    # given that differ from it, and the genre map applied (its path and sha256).
    protocol: str = ""
    protocol_overrides: tuple[str, ...] = ()
    genre_map: str = ""
    genre_map_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        values = asdict(self)
        values["genres"] = list(self.genres)
        if not self.features.uses_audio_embeddings:
            # Derived from `features`, for people: how to compute the same log-mel elsewhere.
            values["log_mel"] = self.features.log_mel_definition()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ShardsMeta:
        values = dict(values)
        values.pop("log_mel", None)
        values["genres"] = tuple(values["genres"])
        values["protocol_overrides"] = tuple(values.get("protocol_overrides", ()))
        values["features"] = FeatureConfig.from_dict(values["features"])
        return cls(**values)

    def write(self, directory: Path) -> None:
        write_atomically(Path(directory) / META_FILE, json.dumps(self.to_dict(), indent=2) + "\n")


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def read_meta(directory: str | Path) -> ShardsMeta:
    """Load and check meta.json; raises `ShardsError` naming the problem and the fix."""
    directory = Path(directory)
    if directory.is_file():
        raise ShardsError(f"{directory} is a file: give the folder `python -m data_prep build` wrote")
    if not directory.is_dir():
        raise ShardsError(
            f"shards directory {directory} does not exist: run `python -m data_prep build` first"
        )
    path = directory / META_FILE
    if not path.is_file():
        raise ShardsError(
            f"{path} is missing: {directory} is not a finished shards directory "
            "(rerun `python -m data_prep build` with the same --out to finish it)"
        )
    values = json.loads(path.read_text(encoding="utf-8"))
    version = values.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        readable = " and ".join(str(number) for number in READABLE_FORMAT_VERSIONS)
        raise ShardsError(
            f"{path} has shard format version {version}, this genre-fusion reads versions {readable}: "
            "rebuild the shards with `python -m data_prep build`"
        )
    return ShardsMeta.from_dict(values)


def shard_files(directory: str | Path, split: str) -> list[Path]:
    """The finished TFRecord files of `split`, in order; `ShardsError` if there are none."""
    files = sorted(Path(directory).glob(f"{split}-*-of-*.tfrecord"))
    if not files:
        raise ShardsError(f"no {split} shards in {directory}: the {split} split is empty or was not built")
    return files
