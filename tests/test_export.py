"""`genre_fusion.export`: a finished run -> one SavedModel that serves raw audio and lyrics alone.

On the session's `trained_exports` (tests/export_fixtures.py, shared with test_predict.py): two
small models, one per text encoder, trained and exported. The round trip serves both exports in a
fresh Python process that imports only TensorFlow and NumPy, with the run directories and the hub
module folder moved away, and compares with the trained Keras models fed the songs' features as
the shards hold them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_prep.sources import read_music4all
from genre_fusion.data.inputs import EMBEDDINGS_INPUT, LOG_MEL_INPUT, TOKENS_INPUT, WORDS_INPUT, input_names
from genre_fusion.data.schema import parse_song
from genre_fusion.data.shards import SPLITS, read_meta, shard_files
from genre_fusion.features.audio import decode_audio
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.lyrics import read_lyrics
from genre_fusion.files.owned_outputs import MARKER_FILE, owned_outputs, record_outputs
from genre_fusion.runs.config import TrainConfig
from genre_fusion.runs.layout import MODEL_FILE, RUN_FILE
from genre_fusion.serving import export
from genre_fusion.serving.layout import CLASSIFY_SIGNATURE, FEATURES_SIGNATURE, SERVING_SIGNATURE
from tests import hub_standins

if TYPE_CHECKING:  # imported by pytest, as a plugin, at run time
    from tests.export_fixtures import TrainedExports

pytest_plugins = ["tests.export_fixtures"]
pytestmark = pytest.mark.e2e

# The shards store log-mel and embeddings as float16 (11-bit significand: relative error <= 2**-11,
# plus float16's absolute resolution near 0); served features are float32.
FLOAT16_RTOL = 2**-10
FLOAT16_ATOL = 1e-4
# Served probabilities against the Keras model fed the served features: the same float32 numbers
# through the same layers, in another process (summation order may differ).
SAME_FEATURES_ATOL = 1e-5
# Served probabilities against the Keras model fed the shards' float16 features: float16 rounding
# of the inputs is the only difference (measured: at most 1.1e-5 on these small models).
SHARD_FEATURES_ATOL = 1e-4


@dataclass(frozen=True)
class Songs:
    """The shards' songs in one order: `waveforms` float32 [n, clip_samples] decoded as preparation
    decodes them, raw `lyrics` ("" without), and per encoder the shard records."""

    ids: list[str]
    waveforms: np.ndarray
    lyrics: list[str]
    records: dict[str, list[dict]]


def _shard_records(shards: Path) -> dict[str, dict]:
    meta = read_meta(shards)
    files = [str(path) for split in SPLITS for path in shard_files(shards, split)]
    return {
        record["id"].decode(): record
        for record in (
            {key: value.numpy() for key, value in parse_song(serialized, meta.features).items()}
            for serialized in tf.data.TFRecordDataset(files)
        )
    }


def _raw_lyrics(path: Path | None) -> str:
    """What preparation reads: "" for an instrumental song (no path) or a missing file."""
    return (read_lyrics(path) or "") if isinstance(path, Path) else ""


def _songs(trained_exports: TrainedExports) -> Songs:
    records = {encoder: _shard_records(shards) for encoder, shards in trained_exports.shards.items()}
    ids = sorted(records["learned"])
    assert sorted(records["hub"]) == ids
    sources = read_music4all(trained_exports.collection).set_index("id")
    features = trained_exports.features
    waveforms = [
        decode_audio(sources.at[i, "audio"], features.sample_rate, features.clip_seconds).waveform
        for i in ids
    ]
    lyrics = [_raw_lyrics(sources.at[i, "lyrics"]) for i in ids]
    return Songs(ids, np.stack(waveforms), lyrics, {e: [records[e][i] for i in ids] for e in records})


def shard_inputs(records: list[dict], features: FeatureConfig, without_lyrics: bool = False) -> dict:
    """The model inputs of `records` as training reads them (float16 -> float32); with
    `without_lyrics`, what the shards hold for a song without lyrics."""
    inputs = {LOG_MEL_INPUT: np.stack([r[LOG_MEL_INPUT] for r in records]).astype(np.float32)}
    if features.uses_embeddings:
        inputs[EMBEDDINGS_INPUT] = np.stack([r[EMBEDDINGS_INPUT] for r in records]).astype(np.float32)
        inputs[TOKENS_INPUT] = np.array([r[TOKENS_INPUT] for r in records], np.int32)
        if without_lyrics:
            inputs[EMBEDDINGS_INPUT][:] = 0.0
            inputs[TOKENS_INPUT][:] = 0
    else:
        inputs[WORDS_INPUT] = np.array(
            [b"" if without_lyrics else r[WORDS_INPUT] for r in records], dtype=object
        )
    return inputs


# Runs in the fresh process: TensorFlow and NumPy only. argv: models JSON, songs .npz, output folder.
SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    def specs(structure):
        return {name: [spec.dtype.name, spec.shape.as_list()] for name, spec in structure.items()}

    def array(tensor):  # strings as fixed-width bytes: object arrays would need pickle
        return tensor.numpy().astype(bytes) if tensor.dtype == tf.string else tensor.numpy()

    models, songs, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
    waveform, lyrics = tf.constant(songs["waveforms"]), tf.constant(songs["lyrics"])
    report = {}
    for name, path in models.items():
        signatures = tf.saved_model.load(path).signatures
        served = signatures["serving_default"](waveform=waveform, lyrics=lyrics)
        no_lyrics = signatures["serving_default"](waveform=waveform, lyrics=tf.fill(tf.shape(lyrics), ""))
        features = signatures["features"](waveform=waveform, lyrics=lyrics)
        arrays = {f"served_{k}": array(v) for k, v in served.items()}
        arrays.update({f"no_lyrics_{k}": array(v) for k, v in no_lyrics.items()})
        arrays.update({f"features_{k}": array(v) for k, v in features.items()})
        np.savez(f"{out}/{name}.npz", **arrays)
        report[name] = {
            key: {"inputs": specs(f.structured_input_signature[1]), "outputs": specs(f.structured_outputs)}
            for key, f in signatures.items()
        }
    project = ("genre_fusion", "data_prep", "tests", "tensorflow_hub")
    report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in project)
    print(json.dumps(report))
    """
)


@dataclass(frozen=True)
class RoundTrip:
    songs: Songs
    served: dict[str, dict[str, np.ndarray]]  # by encoder: output name -> array
    report: dict


@pytest.fixture(scope="module")
def round_trip(trained_exports: TrainedExports, tmp_path_factory) -> RoundTrip:
    songs = _songs(trained_exports)
    work = tmp_path_factory.mktemp("round_trip")
    np.savez(
        work / "songs.npz",
        waveforms=songs.waveforms,
        lyrics=np.array([text.encode() for text in songs.lyrics]),
    )
    moved = [trained_exports.standin, *trained_exports.runs.values()]
    for path in moved:
        path.rename(path.with_name(path.name + ".moved"))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                SERVE_SCRIPT,
                json.dumps({encoder: str(path) for encoder, path in trained_exports.models.items()}),
                str(work / "songs.npz"),
                str(work),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            cwd=work,
            timeout=300,
        )
    finally:
        for path in moved:
            path.with_name(path.name + ".moved").rename(path)
    assert result.returncode == 0, result.stderr[-3000:]
    served = {encoder: dict(np.load(work / f"{encoder}.npz")) for encoder in trained_exports.models}
    return RoundTrip(songs, served, json.loads(result.stdout.strip().splitlines()[-1]))


def _keras_model(trained_exports: TrainedExports, encoder: str) -> keras.Model:
    return keras.models.load_model(trained_exports.runs[encoder] / MODEL_FILE, compile=False)


def test_the_fresh_process_needs_nothing_but_tensorflow(round_trip):
    assert round_trip.report["modules"] == []


def test_served_features_are_the_shards_features(trained_exports, round_trip, encoder):
    features = TrainConfig.load(trained_exports.runs[encoder]).features
    served = round_trip.served[encoder]
    expected = shard_inputs(round_trip.songs.records[encoder], features)
    assert sorted(name for name in served if name.startswith("features_")) == sorted(
        f"features_{name}" for name in input_names(("audio", "lyrics"), features)
    )
    for name, want in expected.items():
        got = served[f"features_{name}"]
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=FLOAT16_RTOL, atol=FLOAT16_ATOL, err_msg=name)
        else:
            np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=name)
    has_lyrics = [bool(text.strip()) for text in round_trip.songs.lyrics]
    assert any(has_lyrics) and not all(has_lyrics)  # the collection's instrumental songs are in the test


def test_served_probabilities_match_the_trained_model(trained_exports, round_trip, encoder):
    features = TrainConfig.load(trained_exports.runs[encoder]).features
    model = _keras_model(trained_exports, encoder)
    served = round_trip.served[encoder]
    records = round_trip.songs.records[encoder]
    probabilities = served["served_probabilities"]
    assert probabilities.shape == (len(records), trained_exports.genre_count)
    assert probabilities.dtype == np.float32

    on_shards = model(shard_inputs(records, features), training=False).numpy()
    np.testing.assert_allclose(probabilities, on_shards, atol=SHARD_FEATURES_ATOL)
    served_features = {k.removeprefix("features_"): v for k, v in served.items() if k.startswith("features_")}
    on_served_features = model(served_features, training=False).numpy()
    np.testing.assert_allclose(probabilities, on_served_features, atol=SAME_FEATURES_ATOL)
    # And the ranking is the model's: the genres of the top probabilities, most probable first.
    genres = np.array(TrainConfig.load(trained_exports.runs[encoder]).genres)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, : trained_exports.top_k]
    np.testing.assert_array_equal(served["served_top_genres"].astype(str), genres[order])
    np.testing.assert_allclose(
        served["served_top_probabilities"], np.take_along_axis(probabilities, order, 1)
    )


def test_songs_without_lyrics_are_served(trained_exports, round_trip, encoder):
    features = TrainConfig.load(trained_exports.runs[encoder]).features
    model = _keras_model(trained_exports, encoder)
    records = round_trip.songs.records[encoder]
    no_lyrics = round_trip.served[encoder]["no_lyrics_probabilities"]
    expected = model(shard_inputs(records, features, without_lyrics=True), training=False).numpy()
    np.testing.assert_allclose(no_lyrics, expected, atol=SHARD_FEATURES_ATOL)
    # The lyrics are used: the songs that have some are classified differently without them.
    with_lyrics = np.array([bool(text.strip()) for text in round_trip.songs.lyrics])
    served = round_trip.served[encoder]["served_probabilities"]
    assert not np.allclose(served[with_lyrics], no_lyrics[with_lyrics], atol=1e-6)
    np.testing.assert_allclose(served[~with_lyrics], no_lyrics[~with_lyrics], atol=SAME_FEATURES_ATOL)


def test_signatures_names_and_shapes(trained_exports, round_trip, encoder):
    features = TrainConfig.load(trained_exports.runs[encoder]).features
    signatures = round_trip.report[encoder]
    assert sorted(signatures) == sorted([SERVING_SIGNATURE, FEATURES_SIGNATURE, CLASSIFY_SIGNATURE])
    genres, top_k = trained_exports.genre_count, trained_exports.top_k
    outputs = {
        "probabilities": ["float32", [None, genres]],
        "top_genres": ["string", [None, top_k]],
        "top_probabilities": ["float32", [None, top_k]],
    }
    assert signatures[SERVING_SIGNATURE] == {
        "inputs": {"waveform": ["float32", [None, None]], "lyrics": ["string", [None]]},
        "outputs": outputs,
    }
    feature_settings = trained_exports.features
    model_inputs = {LOG_MEL_INPUT: ["float32", [None, feature_settings.mel_bins, feature_settings.frames]]}
    if encoder == "hub":
        width = hub_standins.DEFAULT_WIDTH
        model_inputs[EMBEDDINGS_INPUT] = ["float32", [None, feature_settings.max_tokens, width]]
        model_inputs[TOKENS_INPUT] = ["int32", [None]]
    else:
        model_inputs[WORDS_INPUT] = ["string", [None]]
    assert signatures[FEATURES_SIGNATURE]["outputs"] == model_inputs
    assert signatures[CLASSIFY_SIGNATURE] == {"inputs": model_inputs, "outputs": outputs}
    # signature.json describes the same signatures, written from the reloaded export.
    model = trained_exports.models[encoder]
    written = json.loads((model / export.SIGNATURE_FILE).read_text())
    assert written["top_k"] == top_k
    for name, signature in signatures.items():
        for kind in ("inputs", "outputs"):
            assert {
                n: [s["dtype"], s["shape"]] for n, s in written["signatures"][name][kind].items()
            } == signature[kind]
    assert features.to_dict() == json.loads((model / export.FEATURES_FILE).read_text())


def test_labels_txt_lists_the_genres_in_output_order(trained_exports):
    for encoder, model in trained_exports.models.items():
        labels = (model / export.LABELS_FILE).read_text(encoding="utf-8").splitlines()
        assert labels == list(TrainConfig.load(trained_exports.runs[encoder]).genres)
        assert len(labels) == trained_exports.genre_count
        assert "predict" in (model / export.README_FILE).read_text()


def test_refuses_a_run_without_a_finished_model(trained_exports, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(trained_exports.runs["learned"] / "config.json", unfinished)
    assert export.main(["--run", str(unfinished), "--out", str(tmp_path / "model")]) == 2
    assert "no finished model" in capsys.readouterr().err
    # A checkpoint, but training went on.
    shutil.copy(trained_exports.runs["learned"] / MODEL_FILE, unfinished)
    assert export.main(["--run", str(unfinished), "--out", str(tmp_path / "model")]) == 2
    assert f"{RUN_FILE} are written when training ends" in capsys.readouterr().err
    assert export.main(["--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "model")]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def _entries(folder: Path) -> dict[str, bytes | None]:
    """Every file under `folder` (relative path -> content; None for a folder): what must survive."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


def _old_export(trained_exports: TrainedExports, folder: Path) -> Path:
    """A copy of the learned export as the code before the record wrote it: no marker."""
    shutil.copytree(trained_exports.models["learned"], folder)
    (folder / MARKER_FILE).unlink()
    (folder / export.README_FILE).write_text("the old export\n")
    return folder


def test_the_export_records_exactly_its_entries(trained_exports):
    for model in trained_exports.models.values():
        kind, names = owned_outputs(model)
        entries = {path.name for path in model.iterdir()} - {MARKER_FILE}
        assert kind == export.EXPORT_KIND and names == entries == export.LEGACY_EXPORT_NAMES


def _out_with_other_files(trained_exports, tmp_path) -> Path:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    return out


def _export_and_a_user_file(trained_exports, tmp_path) -> Path:
    out = shutil.copytree(trained_exports.models["learned"], tmp_path / "model")
    (out / "notes.txt").write_text("mine")
    return out


def _folder_of_several_models(trained_exports, tmp_path) -> Path:
    models = tmp_path / "models"
    for encoder, model in trained_exports.models.items():
        shutil.copytree(model, models / encoder)
    return models


def _run_directory(trained_exports, tmp_path) -> Path:
    return shutil.copytree(trained_exports.runs["learned"], tmp_path / "run")


def _part_of_an_old_export(trained_exports, tmp_path) -> Path:
    out = _old_export(trained_exports, tmp_path / "model")
    shutil.rmtree(out / "variables")  # what is left may be a user's labels.txt and README.txt
    (out / "saved_model.pb").unlink()
    return out


def _a_file(trained_exports, tmp_path) -> Path:
    out = tmp_path / "model"
    out.write_text("not a folder")
    return out


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (_out_with_other_files, "is not an export of genre_fusion.export alone (it holds keep.txt)"),
        (_export_and_a_user_file, "(it holds notes.txt)"),
        (_folder_of_several_models, "(it holds hub, learned)"),
        (_run_directory, "not an export"),  # recorded as a run, or holding config.json etc.
        (_part_of_an_old_export, "is not an export of genre_fusion.export alone"),
        (_a_file, "is a file, not a folder"),
    ],
)
def test_an_out_that_is_not_only_an_export_is_refused_and_kept(
    trained_exports, tmp_path, capsys, make_out, message
):
    out = make_out(trained_exports, tmp_path)
    before = _entries(tmp_path)
    run = str(trained_exports.runs["learned"])
    for overwrite in ([], ["--overwrite"]):
        assert export.main(["--run", run, "--out", str(out), *overwrite]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and message in err
        assert _entries(tmp_path) == before  # nothing deleted, nothing staged left behind


def test_overwrite_replaces_an_export_made_before_the_record(trained_exports, tmp_path, capsys):
    out = _old_export(trained_exports, tmp_path / "model")
    run = str(trained_exports.runs["learned"])
    assert export.main(["--run", run, "--out", str(out)]) == 2
    assert "holds an export already: pass --overwrite" in capsys.readouterr().err
    assert (out / export.README_FILE).read_text() == "the old export\n"
    assert export.main(["--run", run, "--out", str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "serving_default inputs: lyrics string [None], waveform float32 [None, None]" in printed
    assert "predict" in (out / export.README_FILE).read_text()
    assert owned_outputs(out) == (export.EXPORT_KIND, export.LEGACY_EXPORT_NAMES)
    assert [path.name for path in tmp_path.iterdir()] == ["model"]  # no staging folder left behind


def _fake_write_export(config, model, run_dir, top_k, workdir: Path) -> Path:
    """Stands in for the (slow) SavedModel writing: a staged export with one file and its record."""
    staged = workdir / "export"
    staged.mkdir()
    (staged / export.LABELS_FILE).write_text("".join(f"{genre}\n" for genre in config.genres))
    record_outputs(staged, export.EXPORT_KIND, [export.LABELS_FILE])
    return staged


def test_overwrite_replaces_a_recorded_export_in_one_move(trained_exports, tmp_path, monkeypatch):
    out = shutil.copytree(trained_exports.models["learned"], tmp_path / "model")
    monkeypatch.setattr(export, "_write_export", _fake_write_export)
    assert export.export_run(trained_exports.runs["learned"], out, overwrite=True) == out
    assert sorted(path.name for path in out.iterdir()) == sorted([export.LABELS_FILE, MARKER_FILE])
    assert [path.name for path in tmp_path.iterdir()] == ["model"]  # the old export went with the staging


def test_files_that_arrive_during_the_export_stop_the_replacement(trained_exports, tmp_path, monkeypatch):
    out = shutil.copytree(trained_exports.models["learned"], tmp_path / "model")

    def export_while_a_user_saves_a_file(*args):
        (out / "late.txt").write_text("mine")
        return _fake_write_export(*args)

    monkeypatch.setattr(export, "_write_export", export_while_a_user_saves_a_file)
    before = _entries(out)
    with pytest.raises(export.ExportError, match="late.txt"):
        export.export_run(trained_exports.runs["learned"], out, overwrite=True)
    assert _entries(out) == {**before, "late.txt": b"mine"}
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_bad_numbers_and_unwritable_out_stop_before_the_export(trained_exports, tmp_path, capsys):
    run = str(trained_exports.runs["learned"])
    assert export.main(["--run", run, "--out", str(tmp_path / "model"), "--top-k", "0"]) == 2
    assert "--top-k must be >= 1, got 0" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")  # a folder under a file cannot be made, even by root
    assert export.main(["--run", run, "--out", str(blocker / "model")]) == 2
    assert f"cannot write --out {blocker / 'model'}" in capsys.readouterr().err
    assert _entries(tmp_path) == {"a_file": b"mine"}
    with pytest.raises(SystemExit) as exited:
        export.main(["--run", run, "--out", str(tmp_path / "model"), "--over"])  # no abbreviations
    assert exited.value.code == 2 and "unrecognized arguments: --over" in capsys.readouterr().err
