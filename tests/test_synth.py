"""The synthetic demo collection: Music4All's layout, determinism, faults, and the fusion design."""

import json
import re
from importlib import resources
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from data_prep.__main__ import main
from data_prep.sources import INSTRUMENTAL_LANG as INSTRUMENTAL
from data_prep.synth import CSV_COLUMNS, FAULTS, GENRES, audio_group, lyric_group, write_demo_collection

SR, SECONDS, K = 22050, 2.0, 4
SMALL = {"songs": 24, "genres": K, "seconds": SECONDS, "seed": 7, "faults": True, "progress": False}
UNDECODABLE = ("corrupt_audio", "truncated_audio", "zero_byte_audio")
CHANCE_AT_MOST, SEPARABLE_AT_LEAST = 0.75, 0.9
CONFUSION_SONGS = 160  # 40 per genre: enough for cross-validated accuracies far from both bounds


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, sep="\t", keep_default_na=False, dtype=str)


def decoded_seconds(path: Path) -> float:
    """Seconds that soundfile decodes from ``path``, 0 when it cannot open it at all."""
    try:
        audio, sr = sf.read(path)
    except sf.LibsndfileError:
        return 0.0
    return len(audio) / sr


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return write_demo_collection(out, **SMALL)


@pytest.fixture(scope="module")
def tables(small):
    """id_information, id_genres and id_lang joined, one row per CSV row (duplicate ids included)."""
    info, genres, lang = (read(small.out_dir, f"id_{n}.csv") for n in ("information", "genres", "lang"))
    assert (info.id == genres.id).all() and (info.id == lang.id).all()
    return info.assign(genres=genres.genres, lang=lang.lang)


def test_csvs_have_music4all_columns(small):
    assert small.songs == SMALL["songs"] + len(FAULTS)
    assert small.genres == GENRES[:K]
    for name, columns in CSV_COLUMNS.items():
        table = read(small.out_dir, name)
        assert tuple(table.columns) == columns
        assert len(table) == small.songs
        assert all(re.fullmatch(r"[A-Za-z0-9]{16}", i) for i in table.id)
    meta = read(small.out_dir, "id_metadata.csv").astype({"tempo": float, "key": int, "mode": int})
    assert meta.tempo.between(60, 200).all() and meta.key.between(0, 11).all()
    assert meta["mode"].isin([0, 1]).all()
    assert tuple(read(small.out_dir, "faults.csv").columns) == ("id", "fault")


def test_every_healthy_song_has_audio_and_lyrics(small, tables):
    healthy = tables[~tables.id.isin(small.faults)]
    assert len(healthy) == SMALL["songs"] - 1  # the duplicated id is listed as a fault
    for song in healthy.itertuples():
        audio, sr = sf.read(small.out_dir / "audios" / f"{song.id}.mp3")
        assert (sr, audio.ndim) == (SR, 1)
        assert len(audio) == pytest.approx(SECONDS * SR, rel=0.05)
        lyrics = (small.out_dir / "lyrics" / f"{song.id}.txt").read_text(encoding="utf-8")
        assert (lyrics == "") == (song.lang == INSTRUMENTAL)
        assert song.lang == INSTRUMENTAL or lyrics.count("[Chorus]") >= 2
        assert song.genres.split(",")[0] in GENRES[:K]


def test_artists_have_several_songs_of_one_main_genre(small, tables):
    healthy = tables[~tables.id.isin(small.faults)]
    main = healthy.genres.str.split(",").str[0]
    assert main.groupby(healthy.artist).nunique().max() == 1
    assert healthy.artist.value_counts().between(3, 8).all()
    assert set(main) == set(GENRES[:K])


def test_same_seed_same_collection(small, tmp_path):
    again = write_demo_collection(tmp_path, **SMALL)
    assert again.faults == small.faults
    for name in [*CSV_COLUMNS, "faults.csv"]:
        assert (tmp_path / name).read_bytes() == (small.out_dir / name).read_bytes(), name
    for path in sorted((small.out_dir / "lyrics").iterdir()):
        assert (tmp_path / "lyrics" / path.name).read_bytes() == path.read_bytes()
    for path in sorted((small.out_dir / "audios").iterdir())[:5]:
        if path.stat().st_size > 1000:
            np.testing.assert_array_equal(sf.read(tmp_path / "audios" / path.name)[0], sf.read(path)[0])
    other = write_demo_collection(tmp_path / "other", **{**SMALL, "seed": 8})
    assert not set(read(other.out_dir, "id_lang.csv").id) & set(read(small.out_dir, "id_lang.csv").id)


def test_faults_are_on_disk_as_listed(small, tables):
    listed = read(small.out_dir, "faults.csv")
    assert dict(zip(listed.id, listed.fault, strict=True)) == small.faults
    assert sorted(small.faults.values()) == sorted(FAULTS)
    by_fault = {fault: song_id for song_id, fault in small.faults.items()}
    audio = {fault: small.out_dir / "audios" / f"{i}.mp3" for fault, i in by_fault.items()}
    lyrics = {fault: small.out_dir / "lyrics" / f"{i}.txt" for fault, i in by_fault.items()}

    assert audio["zero_byte_audio"].stat().st_size == 0
    assert not audio["missing_audio"].exists()
    assert all(decoded_seconds(audio[fault]) < 1 for fault in UNDECODABLE)
    silent, sr = sf.read(audio["silent_audio"])
    assert (len(silent) / sr == pytest.approx(SECONDS, rel=0.05)) and np.abs(silent).max() < 1e-4
    assert decoded_seconds(audio["short_audio"]) == pytest.approx(0.5, rel=0.05)
    assert not lyrics["missing_lyrics"].exists()
    with pytest.raises(UnicodeDecodeError):
        lyrics["invalid_utf8_lyrics"].read_text(encoding="utf-8")
    for fault in ("missing_lyrics", "invalid_utf8_lyrics", "no_genre", "duplicate_id"):
        assert decoded_seconds(audio[fault]) == pytest.approx(SECONDS, rel=0.05)
    row = tables.set_index("id").loc
    assert row[by_fault["missing_lyrics"], "lang"] == "en"
    assert row[by_fault["no_genre"], "genres"] == ""
    for name in CSV_COLUMNS:
        assert (read(small.out_dir, name).id == by_fault["duplicate_id"]).sum() == 2
    twins = tables[tables.id == by_fault["duplicate_id"]]
    assert twins.artist.nunique() == 2 and twins.song.nunique() == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"genres": 1}, "genres must be between 2 and 12"),
        ({"genres": 13}, "genres must be between 2 and 12"),
        ({"genres": 6, "songs": 11}, "songs must be at least 2 per genre"),
        ({"seconds": 0.5}, "seconds"),
        ({"sample_rate": 22000}, "sample_rate"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_demo_collection(tmp_path, **{"songs": 24, **kwargs})


@pytest.mark.parametrize("k", range(2, len(GENRES) + 1))
def test_each_genre_is_one_audio_group_and_one_lyric_group(k):
    pairs = [(audio_group(g), lyric_group(g, k)) for g in range(k)]
    assert len(set(pairs)) == k  # audio and lyrics together tell every genre apart
    for groups in zip(*pairs, strict=True):
        assert max(groups.count(group) for group in groups) <= 2
    for g in range(k):  # and each genre is confused with another one by at least one modality
        assert any(pairs[g][m] == pairs[h][m] for h in range(k) if h != g for m in (0, 1))


def resource(name: str):
    """``data_prep/synth/resources/<name>.json``, read here rather than through the package's loader."""
    text = resources.files("data_prep.synth").joinpath(f"resources/{name}.json").read_text("utf-8")
    return json.loads(text)


def test_songs_are_made_of_the_resource_tables(small, tables):
    """Genre names, each song's tempo and mode, and every word of its lyrics come from the data files:
    the style of its genre, the word lists of its genre's topic in its language."""
    assert resource("genres")[:K] == list(small.genres)
    styles, topics = resource("audio_styles"), resource("lyric_topics")
    pools = [resource(name) for name in ("stop_words", "fillers", "adlibs")]
    shared = {lang: {word.casefold() for pool in pools for word in pool[lang]} for lang in ("en", "pt")}
    meta = read(small.out_dir, "id_metadata.csv")
    tempo = dict(zip(meta.id, meta.tempo.astype(float), strict=True))
    mode = dict(zip(meta.id, meta["mode"].astype(int), strict=True))
    for song in tables[~tables.id.isin(small.faults)].itertuples():
        genre = GENRES.index(song.genres.split(",")[0])
        style = styles[audio_group(genre)]
        assert style["tempo"][0] <= tempo[song.id] <= style["tempo"][1]
        assert mode[song.id] == style["mode"]
        if song.lang == INSTRUMENTAL:
            continue
        text = (small.out_dir / "lyrics" / f"{song.id}.txt").read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.startswith("[")]  # not the section tags
        words = {word.rstrip(",.!?").casefold() for line in lines for word in line.split()}
        topic = {word.casefold() for word in topics[lyric_group(genre, K)][song.lang]}
        assert words <= topic | shared[song.lang], (song.id, words - topic - shared[song.lang])
        assert words & topic, song.id


def audio_features(path: Path) -> np.ndarray:
    """Mean log energy of a clip in 32 log-spaced frequency bands."""
    audio, _ = sf.read(path, dtype="float32")
    frames = audio[: len(audio) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)
    edges = np.unique(np.geomspace(1, spectrum.size, 33).astype(int))
    return np.log(np.add.reduceat(spectrum, edges[:-1]) + 1e-6)


def accuracy(x: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()


def test_audio_and_lyrics_confuse_different_pairs_and_fusion_separates_all(tmp_path):
    summary = write_demo_collection(
        tmp_path, songs=CONFUSION_SONGS, genres=K, seconds=SECONDS, seed=0, progress=False
    )
    songs = read(tmp_path, "id_genres.csv").assign(lang=read(tmp_path, "id_lang.csv").lang)
    songs = songs[songs.lang == "en"]  # the few Portuguese songs use other words for the same topics
    y = songs.genres.str.split(",").str[0].map(summary.genres.index).to_numpy()
    audio = np.stack([audio_features(tmp_path / "audios" / f"{i}.mp3") for i in songs.id])
    texts = [(tmp_path / "lyrics" / f"{i}.txt").read_text(encoding="utf-8") for i in songs.id]
    lyrics = CountVectorizer().fit_transform(texts).toarray().astype(float)

    for a, b in combinations(range(K), 2):
        pair = np.isin(y, [a, b])
        same_audio, same_lyrics = audio_group(a) == audio_group(b), lyric_group(a, K) == lyric_group(b, K)
        for x, confused in ((audio, same_audio), (lyrics, same_lyrics)):
            score = accuracy(x[pair], y[pair])
            assert score <= CHANCE_AT_MOST if confused else score >= SEPARABLE_AT_LEAST, (a, b, score)
    assert accuracy(audio, y) <= CHANCE_AT_MOST and accuracy(lyrics, y) <= CHANCE_AT_MOST
    assert accuracy(np.hstack([audio, lyrics]), y) >= SEPARABLE_AT_LEAST


TINY = ["--songs", "8", "--genres", "2", "--seconds", "1"]


def written(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` and its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_the_same_settings_again_leave_the_collection_as_it_is(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["synth", "--out", str(out), *TINY, "--faults"]) == 0
    before = written(out)
    assert main(["synth", "--out", str(out), *TINY, "--faults"]) == 0
    assert "already there" in capsys.readouterr().out
    assert written(out) == before


def test_other_settings_replace_only_with_overwrite_and_only_synths_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["synth", "--out", str(out), *TINY]) == 0
    before = written(out)
    assert main(["synth", "--out", str(out), *TINY, "--seed", "1"]) == 2
    assert "--seed 0 -> 1" in capsys.readouterr().err
    assert written(out) == before

    assert main(["synth", "--out", str(out), *TINY, "--seed", "1", "--overwrite"]) == 0
    fresh = tmp_path / "fresh"
    assert main(["synth", "--out", str(fresh), *TINY, "--seed", "1"]) == 0
    assert set(written(out)) == set(written(fresh))  # nothing of the seed-0 collection is left
    assert (out / "id_information.csv").read_bytes() == (fresh / "id_information.csv").read_bytes()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_holding_anything_synth_did_not_write_is_refused(tmp_path, capsys, overwrite):
    music4all = tmp_path / "music4all"  # a real collection: no synth record
    (music4all / "audios").mkdir(parents=True)
    (music4all / "id_information.csv").write_text("id\tartist\tsong\talbum_name\nx\ta\ts\tb\n")
    demo = tmp_path / "demo"
    assert main(["synth", "--out", str(demo), *TINY]) == 0
    (demo / "mine.mp3").write_bytes(b"my own recording")
    for out in (music4all, demo):
        before = written(out)
        assert main(["synth", "--out", str(out), *TINY, "--seed", "1", *overwrite]) == 2
        assert "synth did not write" in capsys.readouterr().err
        assert written(out) == before
