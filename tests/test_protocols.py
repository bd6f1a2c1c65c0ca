"""Protocol presets (`data_prep build --protocol`) and genre maps (`--genre-map`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from data_prep.__main__ import main as data_prep_main
from data_prep.genre_map import SHIPPED_MAPS, UNMAPPED_REASON, read_genre_map
from data_prep.sources import SourceError
from data_prep.synth import write_demo_collection
from genre_fusion.data.shards import read_meta
from genre_fusion.evaluation.protocols import PROTOCOLS

pytest_plugins = ["tests.build_fixtures"]

SMALL_FEATURES = ["--clip-seconds", "2", "--mel-bins", "32", "--quiet", "--workers", "2"]


def _write_map(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _coarse_genres(name: str) -> set[str]:
    with open(SHIPPED_MAPS / name, newline="", encoding="utf-8") as handle:
        return {row["coarse"] for row in csv.DictReader(handle)}


def test_protocol_list_describes_each_preset_with_its_source_and_figures(capsys):
    assert data_prep_main(["build", "--protocol", "list"]) == 0
    listed = capsys.readouterr().out
    for name in ("default", "ru2023", "pandeya2021", "musiclime2025"):
        assert f"{name}: " in listed
    assert "Ru et al., ICASSP 2023" in listed and "example_accuracy 0.456" in listed
    assert "accuracy 0.573" in listed and "musiclime9.csv" in listed
    assert "'F' = example_f1" in listed  # how the paper's numbers read as ours


def test_unknown_protocol_is_refused_with_the_known_names(capsys, shared_manifest_collection, tmp_path):
    out = tmp_path / "shards"
    source = ["--manifest", str(shared_manifest_collection)]
    assert data_prep_main(["build", *source, "--out", str(out), "--protocol", "ru2032"]) == 2
    error = capsys.readouterr().err
    assert "ru2032" in error and "ru2023" in error and "--protocol list" in error
    assert not out.exists()


def test_shipped_maps_give_the_genre_counts_their_protocols_need():
    for protocol in PROTOCOLS.values():
        if protocol.genre_map:
            genre_map = read_genre_map(protocol.genre_map)
            assert len(set(genre_map.coarse_of.values())) == protocol.top_genres, protocol.name
    assert _coarse_genres("musiclime9.csv") == {
        "pop", "rock", "alternative rock", "rhythm music", "electronic", "hip hop", "folk", "heavy music",
        "punk",
    }  # fmt: skip
    lime = read_genre_map("musiclime9.csv")
    assert lime.coarse_of["melodic hardcore"] == "heavy music" and lime.coarse_of["trap music"] == "hip hop"


def test_a_genre_map_maps_in_order_merges_repeats_and_drops_unlisted(tmp_path):
    rows = ["fine,coarse", "Indie Rock,Alternative", "grunge, alternative", "house,dance"]
    genre_map = read_genre_map(str(_write_map(tmp_path / "map.csv", rows)))
    assert genre_map.apply(("polka", "grunge", "indie rock", "house")) == ("alternative", "dance")
    assert genre_map.apply(("polka",)) == ()
    assert len(genre_map.sha256) == 64


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["fine;coarse", "rock;guitar"], "columns fine, coarse"),
        (["fine,coarse", "rock,guitar", "rock,stone"], "line 3: 'rock' is mapped to both 'guitar' and 'st"),
        (["fine,coarse", "rock,"], "line 2: empty coarse genre name"),
        (["fine,coarse"], "maps no genre"),
        (["fine,coarse", "rock,guitar,loud"], "fields"),
    ],
)
def test_a_malformed_genre_map_is_refused_naming_the_fault(tmp_path, rows, message):
    with pytest.raises(SourceError, match=message):
        read_genre_map(str(_write_map(tmp_path / "map.csv", rows)))


def test_a_missing_genre_map_lists_the_shipped_ones(tmp_path):
    with pytest.raises(SourceError, match="coarse44.csv, musiclime9.csv"):
        read_genre_map(str(tmp_path / "nowhere.csv"))


@pytest.mark.e2e
def test_build_applies_the_genre_map_before_the_vocabulary(manifest_collection, tmp_path, read_split):
    # The collection's songs are "rock,live", "pop,live" or "jazz,live"; jazz and live are unmapped.
    genre_map = _write_map(tmp_path / "map.csv", ["fine,coarse", "rock,guitar music", "pop,synth music"])
    out = tmp_path / "shards"
    args = ["build", "--manifest", str(manifest_collection), "--out", str(out), "--genre-map", str(genre_map)]
    assert data_prep_main([*args, *SMALL_FEATURES]) == 0

    meta = read_meta(out)
    assert set(meta.genres) == {"guitar music", "synth music"}
    assert meta.genre_map == str(genre_map.resolve()) and len(meta.genre_map_sha256) == 64
    assert (meta.protocol, meta.protocol_overrides) == ("default", ("genre_map",))
    rejected = pd.read_csv(out / "rejected.csv")
    table = pd.read_csv(manifest_collection)
    jazz = set(table.loc[table["genres"].str.startswith("jazz"), "id"])
    assert set(rejected.loc[rejected["reason"] == UNMAPPED_REASON, "id"]) == jazz
    genre_of = dict(zip(table["id"], table["genres"].str.split(",").str[0], strict=True))
    coarse = {"rock": "guitar music", "pop": "synth music"}
    for split in ("train", "val"):
        for song in read_split(out, split):
            assert meta.genres[song["labels"][0]] == coarse[genre_of[song["id"].decode()]]

    # An edited map is a changed setting: the rerun is refused instead of resuming with other labels.
    _write_map(genre_map, ["fine,coarse", "rock,guitar music", "pop,guitar music"])
    assert data_prep_main([*args, *SMALL_FEATURES]) == 2


@pytest.mark.e2e
def test_a_protocol_sets_the_build_and_flags_override_it(tmp_path, capsys):
    collection = tmp_path / "music4all"
    write_demo_collection(collection, songs=90, genres=4, seconds=2.0, progress=False)
    out = tmp_path / "shards"
    args = ["build", "--music4all", str(collection), "--out", str(out), "--protocol", "ru2023"]
    args += ["--top-genres", "4"]
    assert data_prep_main([*args, *SMALL_FEATURES]) == 0
    assert "protocol ru2023 (overridden: --top-genres)" in capsys.readouterr().out

    meta = read_meta(out)
    assert (meta.protocol, meta.protocol_overrides, meta.label_mode) == ("ru2023", ("top_genres",), "multi")
    assert len(meta.genres) == 4
    songs = pd.read_csv(collection / "id_lang.csv", sep="\t")
    english = set(songs.loc[songs["lang"] == "en", "id"])
    kept = pd.read_csv(out / "splits.csv")
    assert set(kept["id"]) <= english  # --languages en
    shares = kept["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.1) and shares["test"] == pytest.approx(0.2, abs=0.1)
    plan = json.loads((out / "_progress" / "plan.json").read_text())["settings"]
    assert plan["split"] == [0.7, 0.1, 0.2] and plan["require_lyrics"] is True

    # Rerun as written, it resumes; spelled with the protocol's own values, no override is named.
    assert data_prep_main([*args, *SMALL_FEATURES]) == 0
    assert "kept from an earlier run" in capsys.readouterr().out
    again = ["build", "--music4all", str(collection), "--out", str(tmp_path / "again")]
    again += ["--protocol", "ru2023"]
    same = ["--top-genres", "4", "--label-mode", "multi", "--split", "0.7,0.1,0.2", "--require-lyrics"]
    assert data_prep_main([*again, *same, *SMALL_FEATURES]) == 0
    assert read_meta(tmp_path / "again").protocol_overrides == ("top_genres",)
