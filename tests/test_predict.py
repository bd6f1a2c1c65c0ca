"""`genre_fusion.predict` on the session's `trained_exports` (tests/export_fixtures.py, built once).

Expected answers come from the SavedModel's ``serving_default`` called directly on the songs as
`decode_audio` decodes them: what is tested here is the command's reading, pairing, batching,
ranking, output and error handling.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf

from data_prep.sources import read_music4all
from genre_fusion.features.audio import decode_audio
from genre_fusion.serving.layout import PROBABILITIES, SERVING_SIGNATURE
from genre_fusion.serving.predict import main

pytest_plugins = ["tests.export_fixtures"]
pytestmark = pytest.mark.e2e

# The table prints probabilities with 3 decimals; JSON carries float32 values as Python floats.
TABLE_DECIMALS = 3
JSON_ATOL = 1e-6


@pytest.fixture(scope="session")
def models(trained_exports) -> dict[str, Path]:
    return trained_exports.models


@pytest.fixture(scope="session")
def top_k(trained_exports) -> int:
    """How many genres the exports rank."""
    return trained_exports.top_k


@pytest.fixture(scope="module")
def songs(tmp_path_factory, trained_exports) -> dict[str, Path]:
    """Three collection songs with lyrics, re-encoded: WAV stereo at 44.1 kHz, MP3 as written by the
    demo generator, FLAC mono at 16 kHz; their lyrics files; a corrupt MP3 and a missing path."""
    collection = trained_exports.collection
    folder = tmp_path_factory.mktemp("predict_songs")
    table = read_music4all(collection)
    with_lyrics = table[[path is not None for path in table["lyrics"]]].head(3)
    (wav_id, mp3_id, flac_id) = with_lyrics["id"]
    paths = {}
    for name, song_id in (("wav", wav_id), ("mp3", mp3_id), ("flac", flac_id)):
        shutil.copy(collection / "lyrics" / f"{song_id}.txt", folder / f"{name}.txt")
        paths[f"{name}_lyrics"] = folder / f"{name}.txt"
    source = collection / "audios"
    waveform, rate = sf.read(source / f"{wav_id}.mp3", dtype="float32")
    sf.write(folder / "song.wav", np.stack([soxr.resample(waveform, rate, 44_100)] * 2, axis=1), 44_100)
    shutil.copy(source / f"{mp3_id}.mp3", folder / "song.mp3")
    waveform, rate = sf.read(source / f"{flac_id}.mp3", dtype="float32")
    sf.write(folder / "song.flac", soxr.resample(waveform, rate, 16_000), 16_000)
    (folder / "corrupt.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)
    paths.update(wav=folder / "song.wav", mp3=folder / "song.mp3", flac=folder / "song.flac")
    paths.update(corrupt=folder / "corrupt.mp3", missing=folder / "missing.ogg")
    return paths


@functools.cache
def _signature(model_dir: Path):
    return tf.saved_model.load(str(model_dir)).signatures[SERVING_SIGNATURE]


@pytest.fixture(scope="session")
def served(trained_exports):
    """`served(model_dir, audio, lyrics=None)`: the model's probabilities [genres] for one file,
    straight from the SavedModel, the file decoded as the shards' songs were."""
    features = trained_exports.features

    def probabilities(model_dir: Path, audio: Path, lyrics: Path | None = None) -> np.ndarray:
        clip = decode_audio(audio, features.sample_rate, features.clip_seconds)
        text = lyrics.read_text(encoding="utf-8") if lyrics else ""
        outputs = _signature(model_dir)(waveform=tf.constant(clip.waveform[None]), lyrics=tf.constant([text]))
        return outputs[PROBABILITIES].numpy()[0]

    return probabilities


def _genres(model_dir: Path) -> list[str]:
    return (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines()


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def _expected_top(model_dir: Path, probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(_genres(model_dir)[i], float(probabilities[i])) for i in order]


def test_table_for_wav_mp3_flac_with_and_without_lyrics(models, songs, served, capsys):
    model = models["learned"]
    code, out, err = _run(
        capsys, "--model", model, songs["wav"], songs["mp3"], songs["flac"], "--lyrics", songs["wav_lyrics"]
    )
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["song", "#1", "#2", "#3"] and len(rows) == 3
    pairs = ((songs["wav"], songs["wav_lyrics"]), (songs["mp3"], None), (songs["flac"], None))
    for row, (audio, lyrics) in zip(rows, pairs, strict=True):
        name, *cells = row.split()
        assert name == str(audio)
        printed = [(cells[i], float(cells[i + 1])) for i in range(0, len(cells), 2)]
        expected = _expected_top(model, served(model, audio, lyrics), 3)
        assert [genre for genre, _ in printed] == [genre for genre, _ in expected]
        np.testing.assert_allclose(
            [p for _, p in printed], [p for _, p in expected], atol=10**-TABLE_DECIMALS
        )
    assert "3 of 3 songs classified" in err


def test_json_lines_rank_top_k_and_use_the_lyrics(models, songs, served, capsys, encoder):
    model = models[encoder]
    # The same audio twice: with its lyrics (paired by position), then without (no lyrics file left).
    code, out, err = _run(
        capsys,
        "--model",
        model,
        songs["mp3"],
        songs["mp3"],
        "--lyrics",
        songs["mp3_lyrics"],
        "--json",
        "--top-k",
        2,
    )
    assert code == 0, err
    with_lyrics, without = _json_lines(out)
    assert with_lyrics["lyrics"] == str(songs["mp3_lyrics"]) and without["lyrics"] is None
    for line, lyrics in ((with_lyrics, songs["mp3_lyrics"]), (without, None)):
        assert line["song"] == line["audio"] == str(songs["mp3"]) and "error" not in line
        probabilities = [entry["probability"] for entry in line["genres"]]
        assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)
        expected = _expected_top(model, served(model, songs["mp3"], lyrics), 2)
        assert [entry["genre"] for entry in line["genres"]] == [genre for genre, _ in expected]
        np.testing.assert_allclose(probabilities, [p for _, p in expected], atol=JSON_ATOL)
    assert with_lyrics["genres"] != without["genres"]  # the lyrics reached the model


def test_manifest_paths_are_relative_to_it_and_batches_do_not_change_answers(
    models, songs, served, top_k, capsys, tmp_path
):
    folder = songs["wav"].parent
    manifest = folder / "songs.csv"
    manifest.write_text(
        "id,audio,lyrics,genres,artist\n"
        'a,song.wav,wav.txt,"rock,pop",x\n'
        "b,song.mp3,,jazz,\n"
        "c,song.flac,flac.txt,,\n"
        "d,corrupt.mp3,,,\n"
    )
    model = models["learned"]
    code, out, err = _run(capsys, "--model", model, "--manifest", manifest, "--json", "--batch-size", 2)
    assert code == 0, err
    lines = _json_lines(out)
    assert [line["song"] for line in lines] == ["a", "b", "c", "d"]
    assert lines[0]["lyrics"] == str(folder / "wav.txt") and lines[1]["lyrics"] is None
    assert "error" in lines[3] and "error: d: undecodable audio" in err
    np.testing.assert_allclose(
        [entry["probability"] for entry in lines[2]["genres"]],
        [p for _, p in _expected_top(model, served(model, songs["flac"], songs["flac_lyrics"]), top_k)],
        atol=JSON_ATOL,
    )
    # In one batch instead of two: the same answers.
    code, out, _ = _run(capsys, "--model", model, "--manifest", manifest, "--json", "--batch-size", 16)
    assert code == 0
    for line, before in zip(_json_lines(out), lines, strict=True):
        assert [entry["genre"] for entry in line.get("genres", [])] == [
            e["genre"] for e in before.get("genres", [])
        ]
        np.testing.assert_allclose(
            [e["probability"] for e in line.get("genres", [])],
            [e["probability"] for e in before.get("genres", [])],
            atol=JSON_ATOL,
        )


def test_corrupt_and_missing_files_get_errors_and_the_others_are_classified(
    models, songs, top_k, capsys, tmp_path
):
    missing_lyrics = tmp_path / "no_such_lyrics.txt"
    code, out, err = _run(
        capsys, "--model", models["learned"], songs["corrupt"], songs["mp3"], songs["missing"], songs["wav"],
        "--lyrics", songs["mp3_lyrics"], "--lyrics", songs["mp3_lyrics"], "--lyrics", songs["mp3_lyrics"],
        "--lyrics", missing_lyrics, "--json",
    )  # fmt: skip
    assert code == 0
    lines = _json_lines(out)
    assert [line["audio"] for line in lines] == [str(songs[k]) for k in ("corrupt", "mp3", "missing", "wav")]
    assert lines[0]["error"].startswith("undecodable audio") and "genres" not in lines[0]
    assert lines[2]["error"].startswith("missing audio")
    assert lines[3]["error"].startswith("missing lyrics") and str(missing_lyrics) in lines[3]["error"]
    assert "error" not in lines[1] and len(lines[1]["genres"]) == top_k
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[1] for line in errors] == [str(songs[k]) for k in ("corrupt", "missing", "wav")]
    assert "1 of 4 songs classified" in err
    # Without --json: the table holds the classified song only, the errors go to stderr.
    code, out, err = _run(
        capsys, "--model", models["learned"], songs["corrupt"], songs["mp3"], songs["missing"]
    )
    assert code == 0 and len(out.splitlines()) == 2 and str(songs["mp3"]) in out
    assert err.count("error: ") == 2


def test_decoder_notes_are_summed_up_not_interleaved(models, songs, capfd, tmp_path):
    """libmpg123 prints notes on file descriptor 2 for a file that is not an MP3 (a README here)."""
    not_an_mp3 = tmp_path / "fake.mp3"
    not_an_mp3.write_bytes(Path(__file__).read_bytes() * 3)
    code = main(["--model", str(models["learned"]), str(not_an_mp3), str(songs["mp3"])])
    out, err = capfd.readouterr()
    assert code == 0 and str(songs["mp3"]) in out
    notes = [line for line in err.splitlines() if "Audio-MPEG-Header" in line]
    assert notes and all(line.startswith("note: the audio decoder") for line in notes)


def test_nothing_classified_is_a_non_zero_exit(models, songs, capsys):
    code, out, err = _run(capsys, "--model", models["learned"], songs["corrupt"], songs["missing"], "--json")
    assert code == 1
    assert [sorted(line) for line in _json_lines(out)] == [["audio", "error", "lyrics", "song"]] * 2
    assert "0 of 2 songs classified" in err


def test_top_k_is_capped_at_what_the_model_ranks(models, songs, top_k, capsys):
    code, out, err = _run(capsys, "--model", models["learned"], songs["mp3"], "--json", "--top-k", 10)
    assert code == 0 and len(_json_lines(out)[0]["genres"]) == top_k
    assert f"the model ranks its top {top_k} genres" in err


def test_usage_errors(models, songs, capsys, tmp_path):
    code, _, err = _run(capsys, "--model", tmp_path, songs["mp3"])
    assert code == 2 and "not an exported model" in err and "genre_fusion.export" in err
    code, _, err = _run(
        capsys,
        "--model",
        models["learned"],
        songs["mp3"],
        "--lyrics",
        songs["mp3_lyrics"],
        "--lyrics",
        songs["wav_lyrics"],
    )
    assert code == 2 and "2 --lyrics files for 1 audio files" in err
    bad_manifest = tmp_path / "bad.csv"
    bad_manifest.write_text("id;audio;lyrics\na;song.mp3;\n")
    code, _, err = _run(capsys, "--model", models["learned"], "--manifest", bad_manifest)
    assert code == 2 and "has no column id, audio" in err
    with pytest.raises(SystemExit) as exited:
        main(["--model", str(models["learned"])])
    assert exited.value.code == 2 and "give audio files" in capsys.readouterr().err


def test_lyrics_may_come_before_the_audio_and_pair_in_order(models, songs, served, top_k, capsys):
    model = models["learned"]
    code, out, err = _run(
        capsys, "--model", model, "--lyrics", songs["wav_lyrics"], "--lyrics", songs["mp3_lyrics"],
        songs["wav"], songs["mp3"], songs["flac"], "--json",
    )  # fmt: skip
    assert code == 0, err
    lines = _json_lines(out)
    pairs = ((songs["wav"], songs["wav_lyrics"]), (songs["mp3"], songs["mp3_lyrics"]), (songs["flac"], None))
    assert [(line["audio"], line["lyrics"]) for line in lines] == [
        (str(audio), lyrics and str(lyrics)) for audio, lyrics in pairs
    ]
    for line, (audio, lyrics) in zip(lines, pairs, strict=True):
        expected = _expected_top(model, served(model, audio, lyrics), top_k)
        assert [entry["genre"] for entry in line["genres"]] == [genre for genre, _ in expected]


def test_several_files_after_one_lyrics_flag_are_refused_not_taken_for_audio(models, songs, capsys):
    with pytest.raises(SystemExit) as exited:
        main(
            [str(arg) for arg in ("--model", models["learned"], songs["wav"], songs["mp3"], "--lyrics")]
            + [str(songs["wav_lyrics"]), str(songs["mp3_lyrics"])]
        )
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"unrecognized arguments: {songs['mp3_lyrics']}" in err and "--lyrics a.txt --lyrics b.txt" in err


def _a_file(model: Path, folder: Path) -> Path:
    (folder / "model.txt").write_text("not a model")
    return folder / "model.txt"


def _without(name: str):
    def make(model: Path, folder: Path) -> Path:
        copy = shutil.copytree(model, folder / "model")
        (shutil.rmtree if (copy / name).is_dir() else Path.unlink)(copy / name)
        return copy

    return make


def _with_an_extra_genre(model: Path, folder: Path) -> Path:
    copy = shutil.copytree(model, folder / "model")
    with open(copy / "labels.txt", "a", encoding="utf-8") as labels:
        labels.write("polka\n")
    return copy


def _with_damaged_features(model: Path, folder: Path) -> Path:
    copy = shutil.copytree(model, folder / "model")
    (copy / "features.json").write_text('{"sample_rate": 22050, "colour": "blue"}')
    return copy


@pytest.mark.parametrize(
    ("make_model", "reason"),
    [
        (lambda model, folder: folder / "nowhere", "not found"),
        (_a_file, "a file, not a folder"),
        (_without("labels.txt"), "labels.txt is missing"),
        (_without("features.json"), "features.json is missing"),
        (_without("saved_model.pb"), "no saved_model.pb"),
        (_with_an_extra_genre, "labels.txt has 5 genres, model 4"),
        (_with_damaged_features, "unreadable"),
    ],
)
def test_a_model_that_is_not_an_export_is_a_usage_error(models, songs, capsys, tmp_path, make_model, reason):
    model = make_model(models["learned"], tmp_path)
    code, out, err = _run(capsys, "--model", model, songs["mp3"])
    assert code == 2 and out == ""
    assert f"--model {model} is not an exported model ({reason}" in err and "genre_fusion.export" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,audio,lyrics\na,song.mp3,,rock,pop\n", "a row has more fields than the header"),
        ("id,audio,lyrics\na,song.mp3,\nb,song.wav,,rock,pop\n", "Expected 3 fields in line 3, saw 5"),
        ("id\taudio\tlyrics\na\tsong.mp3\t\n", "has no column id, audio"),
        ("id,audio,lyrics\na,song.mp3,\nb,,wav.txt\n,song.wav,\n", "has an empty id or audio on line 3, 4"),
    ],
)
def test_manifest_that_cannot_be_read_as_documented_is_a_usage_error(models, songs, capsys, content, message):
    manifest = songs["mp3"].parent / "bad_manifest.csv"
    manifest.write_text(content)
    code, out, err = _run(capsys, "--model", models["learned"], "--manifest", manifest)
    assert code == 2 and out == ""
    assert f"manifest {manifest}" in err and message in err
    if "fields" in message:  # a quoted field is the documented way to hold commas
        assert "double quotes" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--top-k", "0"], "--top-k must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--top", "2"], "unrecognized arguments: --top 2"),  # no abbreviations
    ],
)
def test_bad_options_exit_2_naming_the_option(models, songs, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        main(["--model", str(models["learned"]), str(songs["mp3"]), *argv])
    assert exited.value.code == 2 and message in capsys.readouterr().err
