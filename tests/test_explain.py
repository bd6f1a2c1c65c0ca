"""`genre_fusion.explain`: occlusion on a numpy stand-in model whose answers are known by hand, then
the command end to end on the session's `trained_exports` (tests/export_fixtures.py, built once).

The stand-in scores three genres: "fiery" rises with the word "fire" in the lyrics and with the
energy of the waveform between 2.0 and 3.0 s, "watery" with the word "water", "steady" with
nothing. Every other word and time reaches no genre, so occluding it changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from data_prep.sources import read_music4all
from genre_fusion.serving.explain_cli import OUTPUT_FILES, main
from genre_fusion.serving.explanation import (
    count_word,
    explain,
    lyric_words,
    time_windows,
    without_word,
)
from genre_fusion.serving.predict import ExportedModel, Song, predict

pytest_plugins = ["tests.export_fixtures"]

GENRES = ("fiery", "watery", "steady")
RATE = 100  # samples per second: a 5 s clip of 500 samples keeps the stand-in instant
CLIP_SECONDS = 5
LOUD = slice(2 * RATE, 3 * RATE)  # the only time the stand-in listens to
FIRE_WEIGHT, WATER_WEIGHT, ENERGY_WEIGHT = 2.0, 1.5, 3.0
WATERY_BIAS, STEADY_LOGIT = 1.0, 0.5
LYRICS = "[Chorus]\nFire in the night, FIRE!\nWater on the river\nMidnight train rolling\n"


def _softmax(logits: np.ndarray) -> np.ndarray:
    exponents = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponents / exponents.sum(axis=-1, keepdims=True)


def _logits(fire: float, water: float, energy: float) -> np.ndarray:
    return np.array(
        [FIRE_WEIGHT * fire + ENERGY_WEIGHT * energy, WATERY_BIAS + WATER_WEIGHT * water, STEADY_LOGIT]
    )


def stand_in_model(waveforms: np.ndarray, lyrics: list[str]) -> np.ndarray:
    """waveforms [n, samples], lyrics [n] -> probabilities float32 [n, 3] (see the module docstring)."""
    words = [set(re.findall(r"[a-z]+", text.lower())) for text in lyrics]
    energy = np.mean(np.asarray(waveforms)[:, LOUD] ** 2, axis=1)
    logits = [_logits("fire" in w, "water" in w, e) for w, e in zip(words, energy, strict=True)]
    return _softmax(np.stack(logits)).astype(np.float32)


@pytest.fixture
def song() -> np.ndarray:
    """float32 [500]: a tone of amplitude 0.5, loud (amplitude 1, energy 0.5) from 2.0 to 3.0 s."""
    t = np.arange(CLIP_SECONDS * RATE) / RATE
    waveform = 0.5 * np.sin(2 * np.pi * 7 * t)
    waveform[LOUD] *= 2
    return waveform.astype(np.float32)


def _explain(waveform: np.ndarray, lyrics: str, model=stand_in_model, window_seconds: float = 1.0, **kwargs):
    windows = time_windows(len(waveform), RATE, window_seconds)
    return explain(model, waveform, lyrics, GENRES, lyric_words(lyrics, 200), windows, RATE, **kwargs)


def test_modality_drops_are_the_hand_computed_ones(song):
    energy = 0.5  # mean square of a unit sine over whole periods
    both = _softmax(_logits(fire=1, water=1, energy=energy))[0]
    without_lyrics = _softmax(_logits(fire=0, water=0, energy=energy))[0]
    without_audio = _softmax(_logits(fire=1, water=1, energy=0))[0]

    explanation = _explain(song, LYRICS)

    assert explanation.predicted_genre == "fiery"
    modalities = explanation.modalities
    assert modalities.with_both == pytest.approx(both, abs=1e-6)
    assert modalities.drop_lyrics == pytest.approx(both - without_lyrics, abs=1e-6)
    assert modalities.drop_audio == pytest.approx(both - without_audio, abs=1e-6)
    drop_audio, drop_lyrics = both - without_audio, both - without_lyrics
    assert modalities.shares == pytest.approx(
        (drop_audio / (drop_audio + drop_lyrics), drop_lyrics / (drop_audio + drop_lyrics)), abs=1e-6
    )


def test_fire_supports_water_opposes_and_the_other_words_change_nothing(song):
    explanation = _explain(song, LYRICS)

    both = _softmax(_logits(fire=1, water=1, energy=0.5))[0]
    (fire, *_) = explanation.supporting_words(10)
    assert fire.word == "fire" and fire.occurrences == 2
    assert fire.drop == pytest.approx(both - _softmax(_logits(fire=0, water=1, energy=0.5))[0], abs=1e-6)
    assert fire.drop > 0.1
    assert [effect.word for effect in explanation.opposing_words(10)] == ["water"]
    assert explanation.opposing_words(10)[0].drop < -0.01
    others = {
        effect.word: effect.drop for effect in explanation.words if effect.word not in ("fire", "water")
    }
    assert set(others) == {"night", "river", "midnight", "train", "rolling"}
    assert others == pytest.approx(dict.fromkeys(others, 0.0), abs=1e-6)


def test_the_loud_window_ranks_first_and_the_others_change_nothing(song):
    explanation = _explain(song, LYRICS)

    windows = [(window.start_seconds, window.end_seconds) for window in explanation.windows]
    assert windows == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)]
    top = explanation.top_windows(3)
    assert [(window.start_seconds, window.end_seconds) for window in top] == [(2.0, 3.0)]
    silenced = _softmax(_logits(fire=1, water=1, energy=0))[0]
    assert top[0].drop == pytest.approx(explanation.modalities.with_both - silenced, abs=1e-6)
    quiet = [window.drop for window in explanation.windows if window.start_seconds != 2.0]
    assert quiet == pytest.approx([0.0] * 4, abs=1e-6)


def test_a_song_without_lyrics_and_a_prediction_nothing_lowers(song):
    explanation = _explain(song, "")
    assert explanation.modalities.without_lyrics is None and explanation.modalities.shares is None
    assert explanation.words == ()

    def steady(waveforms: np.ndarray, lyrics: list[str]) -> np.ndarray:
        return np.tile(np.float32([0.2, 0.3, 0.5]), (len(lyrics), 1))

    explanation = _explain(song, LYRICS, model=steady)
    assert explanation.predicted_genre == "steady"
    assert explanation.modalities.neither_drops and explanation.modalities.shares == (0.5, 0.5)
    assert explanation.supporting_words(10) == [] and explanation.top_windows(3) == []


def test_variants_go_through_the_model_in_batches(song):
    batch_sizes = []

    def counting(waveforms: np.ndarray, lyrics: list[str]) -> np.ndarray:
        batch_sizes.append(len(lyrics))
        return stand_in_model(waveforms, lyrics)

    lyrics = LYRICS + " ".join(f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40))
    explanation = _explain(song, lyrics, model=counting, window_seconds=0.1, batch_size=32)

    assert len(explanation.words) == 47 and len(explanation.windows) == 50
    # The song with its two modality occlusions, then the words and the windows, 32 at a time.
    assert batch_sizes == [3, 32, 15, 32, 18]


def test_deleting_a_word_takes_whole_words_in_any_case_and_spelling():
    lyrics = "Fire! fire-fighter, FIRE's fires\nDon't stop, DONT,\ndon’t firefly"
    assert without_word(lyrics, "fire") == "! -fighter, FIRE's fires\nDon't stop, DONT,\ndon’t firefly"
    assert without_word(lyrics, "dont") == "Fire! fire-fighter, FIRE's fires\n stop, ,\n firefly"
    assert count_word(lyrics, "fire") == 2 and count_word(lyrics, "dont") == 3  # "FIRE's" reads as "fires"
    assert without_word(lyrics, "water") == lyrics


def test_windows_cover_the_clip_and_bad_lengths_are_refused():
    assert time_windows(500, RATE, 1.5) == [(0, 150), (150, 300), (300, 450), (450, 500)]
    assert time_windows(500, RATE, 5.0) == [(0, 500)]
    for bad in (0.0, -1.0, 0.001, math.nan, math.inf, 5.5):
        with pytest.raises(ValueError):
            time_windows(500, RATE, bad)


# The command.


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_usage_error(code: int, err: str, out_dir: Path, mentions: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert mentions in err
    assert not out_dir.exists()


def test_bad_options_and_a_non_export_fail_before_anything_is_written(tmp_path, capsys):
    song, out = tmp_path / "song.mp3", tmp_path / "explained"
    song.write_bytes(b"")
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "labels.txt").write_text("rock\n")

    code, _, err = _run(capsys, "--model", tmp_path / "not_a_model", song, "--out", out)
    _assert_usage_error(code, err, out, "is not an exported model")
    code, _, err = _run(capsys, "--model", tmp_path, song, "--out", out, "--window-seconds", "0")
    _assert_usage_error(code, err, out, "--window-seconds")
    code, _, err = _run(capsys, "--model", tmp_path, song, "--out", out, "--top-words", "0")
    _assert_usage_error(code, err, out, "--top-words")


def test_a_folder_with_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "explained"
    out.mkdir()
    (out / "notes.md").write_text("mine\n")
    code, _, err = _run(capsys, "--model", tmp_path, tmp_path / "song.mp3", "--out", out)
    assert code == 2 and err.startswith("error: ") and "notes.md" in err
    assert sorted(path.name for path in out.iterdir()) == ["notes.md"]


@pytest.fixture(scope="module")
def song_files(trained_exports) -> tuple[Path, Path]:
    """A collection song with lyrics: (audio, lyrics)."""
    collection = trained_exports.collection
    table = read_music4all(collection)
    song_id = table[[path is not None for path in table["lyrics"]]]["id"].iloc[0]
    return collection / "audios" / f"{song_id}.mp3", collection / "lyrics" / f"{song_id}.txt"


@pytest.mark.e2e
def test_explain_an_export_end_to_end(trained_exports, song_files, tmp_path, capsys):
    model, (audio, lyrics), out = trained_exports.models["learned"], song_files, tmp_path / "explained"

    code, stdout, err = _run(
        capsys, "--model", model, audio, "--lyrics", lyrics, "--out", out, "--top-words", 5
    )

    assert code == 0, err
    assert sorted(path.name for path in out.iterdir()) == sorted(OUTPUT_FILES)
    assert (out / "explanation.txt").read_text(encoding="utf-8") == stdout
    assert (out / "explanation.png").read_bytes().startswith(b"\x89PNG")
    values = json.loads((out / "explanation.json").read_text(encoding="utf-8"))
    [(genre, probability)] = next(
        predict(ExportedModel(model), [Song("song", audio, lyrics)], top_k=1)
    ).genres
    assert values["predicted_genre"] == genre
    assert values["modalities"]["probability_with_both"] == pytest.approx(probability, abs=1e-5)
    assert values["predicted_probability"] == pytest.approx(probability, abs=1e-5)
    starts, ends = zip(*((w["start_seconds"], w["end_seconds"]) for w in values["windows"]), strict=True)
    assert starts[0] == 0 and list(starts[1:]) == list(ends[:-1])
    assert ends[-1] == pytest.approx(trained_exports.features.clip_seconds)
    assert values["words"] and len(values["supporting_words"]) <= 5

    # Again into the same folder, which holds only the first explanation: the song without lyrics.
    code, stdout, err = _run(capsys, "--model", model, audio, "--out", out, "--window-seconds", 0.5)
    assert code == 0, err
    values = json.loads((out / "explanation.json").read_text(encoding="utf-8"))
    assert not values["modalities"]["lyrics_given"] and values["words"] == []
    assert len(values["windows"]) == math.ceil(trained_exports.features.clip_seconds / 0.5)
    assert "no lyrics given" in stdout


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("problem", "mentions"),
    [("missing audio", "missing audio"), ("window longer than the clip", "longer than the clip")],
)
def test_unusable_input_to_an_export_writes_nothing(
    trained_exports, song_files, tmp_path, capsys, problem, mentions
):
    audio, lyrics = song_files
    options = ["--window-seconds", 60] if problem.startswith("window") else []
    if problem == "missing audio":
        audio = tmp_path / "missing.mp3"
    out = tmp_path / "explained"
    model = trained_exports.models["learned"]
    code, _, err = _run(capsys, "--model", model, audio, "--lyrics", lyrics, "--out", out, *options)
    _assert_usage_error(code, err, out, mentions)
