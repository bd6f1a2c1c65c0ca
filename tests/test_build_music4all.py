"""`data_prep build` on the demo collection in Music4All's layout, and with a TF Hub encoder."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_prep import builder
from data_prep.__main__ import main
from data_prep.build_config import BuildConfig
from data_prep.builder import build_shards
from data_prep.synth import write_demo_collection
from genre_fusion.data.schema import parse_song
from genre_fusion.data.shards import read_meta, shard_files
from genre_fusion.encoders.text import HubTextEncoder
from genre_fusion.features.config import FeatureConfig
from tests import hub_standins

pytestmark = pytest.mark.e2e

# The reason recorded in rejected.csv for each fault the demo generator plants.
REASON_OF_FAULT = {
    "corrupt_audio": "undecodable audio",
    "truncated_audio": "undecodable audio",
    "zero_byte_audio": "empty audio file",
    "missing_audio": "missing audio",
    "silent_audio": "silent audio",
    "short_audio": "too short",
    "invalid_utf8_lyrics": "lyrics not valid UTF-8",
    "no_genre": "no genre in vocabulary",
    "duplicate_id": "duplicate id",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "music4all"
    write_demo_collection(root, songs=80, genres=4, seconds=2.0, faults=True, progress=False)
    return root


def songs_of(shards: Path) -> dict[str, dict]:
    meta = read_meta(shards)
    files = [str(f) for split in ("train", "val", "test") for f in shard_files(shards, split)]
    records = tf.data.TFRecordDataset(files)
    return {
        song["id"].decode(): song
        for song in ({k: v.numpy() for k, v in parse_song(r, meta.features).items()} for r in records)
    }


def test_every_planted_fault_is_rejected_with_its_reason_and_nothing_else_is_lost(demo: Path, tmp_path: Path):
    out = tmp_path / "shards"
    assert (
        main(
            [
                "build",
                "--music4all",
                str(demo),
                "--out",
                str(out),
                "--clip-seconds",
                "2",
                "--mel-bins",
                "32",
                "--quiet",
            ]
        )
        == 0
    )

    faults = pd.read_csv(demo / "faults.csv", sep="\t").set_index("id")["fault"]
    rejected = pd.read_csv(out / "rejected.csv").set_index("id")["reason"]
    expected = {song: REASON_OF_FAULT[fault] for song, fault in faults.items() if fault in REASON_OF_FAULT}
    assert rejected.to_dict() == expected

    songs = songs_of(out)
    listed = pd.read_csv(demo / "id_information.csv", sep="\t")["id"]
    # every healthy song is in the shards; a duplicated id keeps its first row
    duplicates = set(faults[faults == "duplicate_id"].index)
    assert set(songs) == set(listed) - (set(expected) - duplicates)
    missing_lyrics = faults[faults == "missing_lyrics"].index[0]
    assert songs[missing_lyrics]["words"] == b""  # kept, as a song without lyrics
    langs = pd.read_csv(demo / "id_lang.csv", sep="\t").drop_duplicates("id").set_index("id")["lang"]
    for song_id in langs[langs == "INTRUMENTAL"].index.intersection(list(songs)):
        assert songs[song_id]["words"] == b""
    meta = read_meta(out)
    assert sum(meta.rejected.values()) == len(expected)
    assert len(meta.genres) == 4


def test_languages_filter_on_id_lang(demo: Path, tmp_path: Path):
    out = tmp_path / "english"
    build_shards(
        BuildConfig(
            out=str(out), music4all=str(demo), features=FeatureConfig(clip_seconds=2.0), languages=("en",)
        ),
        workers=2,
        progress=False,
    )
    langs = pd.read_csv(demo / "id_lang.csv", sep="\t").drop_duplicates("id").set_index("id")["lang"]
    assert set(langs[list(songs_of(out))]) == {"en"}


@pytest.mark.parametrize("kind", ["tf1", "tf2"])
def test_hub_embeddings_are_computed_once_per_song_and_cached_in_the_shards(
    demo: Path, tmp_path: Path, monkeypatch, kind: str
):
    module = (hub_standins.build_tf1_standin if kind == "tf1" else hub_standins.build_tf2_standin)(
        tmp_path / "module"
    )
    encoders = []

    def recording_loader(features):
        encoder, features = load_text_encoder(features)
        encoders.append(encoder)
        return encoder, features

    load_text_encoder = builder.load_text_encoder
    monkeypatch.setattr(builder, "load_text_encoder", recording_loader)
    features = FeatureConfig(clip_seconds=2.0, mel_bins=16, max_tokens=12, text_encoder=str(module))
    out = tmp_path / "shards"
    build_shards(BuildConfig(out=str(out), music4all=str(demo), features=features), workers=2, progress=False)

    meta = read_meta(out)
    assert meta.features.embedding_width == hub_standins.DEFAULT_WIDTH
    songs = songs_of(out)
    with_words = [song for song in songs.values() if song["words"]]
    assert encoders[0].calls == len(with_words)  # once per song with lyrics, never for the others

    reference = HubTextEncoder(str(module))
    expected = reference.embed([song["words"].decode() for song in with_words])
    for song, vectors in zip(with_words, expected, strict=True):
        tokens = len(song["words"].split())
        assert 0 < tokens <= 12 and song["tokens"] == tokens == len(vectors)
        np.testing.assert_allclose(song["embeddings"][:tokens], vectors, rtol=1e-3, atol=1e-3)  # float16
        assert not song["embeddings"][tokens:].any()
    for song in songs.values():
        if not song["words"]:
            assert song["tokens"] == 0 and not song["embeddings"].any()


def test_the_demo_runs_twice_in_a_row(tmp_path: Path, capsys):
    collection, shards = tmp_path / "music4all", tmp_path / "shards"
    synth = ["synth", "--out", str(collection), "--songs", "40", "--genres", "2", "--seconds", "1"]
    synth.append("--faults")
    build = ["build", "--music4all", str(collection), "--out", str(shards), "--clip-seconds", "1", "--quiet"]
    assert main(synth) == 0 and main(build) == 0
    first = (shards / "splits.csv").read_bytes()
    capsys.readouterr()
    assert main(synth) == 0 and main(build) == 0
    again = capsys.readouterr().out
    assert "already there" in again and "3 shards kept from an earlier run)" in again
    assert (shards / "splits.csv").read_bytes() == first
