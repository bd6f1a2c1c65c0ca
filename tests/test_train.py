"""`python -m genre_fusion.train` end to end on tiny shards: learning, the run directory, songs
without lyrics, resume after kill -9 and Ctrl-C to the uninterrupted history, determinism,
MirroredStrategy, model selection, --overwrite removing only the project's files, divergence and
every bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from data_prep.synth import GENRES as SYNTH_GENRES
from data_prep.synth import audio_group
from genre_fusion.data.pipeline import make_dataset
from genre_fusion.data.shards import META_FILE, read_meta
from genre_fusion.evaluation.evaluate import evaluate_run, predict_split
from genre_fusion.evaluation.metrics import evaluate_predictions
from genre_fusion.files.owned_outputs import MARKER_FILE
from genre_fusion.interruption import INTERRUPTED_EXIT_CODE
from genre_fusion.model.config import ModelConfig
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.loading import read_run_summary
from genre_fusion.training import trainer as train_module
from genre_fusion.training.cli import main
from genre_fusion.training.recipe import class_weights, op_determinism

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
SUBPROCESS_TIMEOUT_S = 300
RUN_FILES = [MARKER_FILE, "config.json", "history.csv", "logs", "model.keras", "run.json"]
# A run that must end with the same history however often it is interrupted: 4 epochs, the
# random layers (dropout, modality dropout) on, class weights (so validation macro-F1 selects).
RESUME_EPOCHS = 4
RESUME_FLAGS = ["--epochs", str(RESUME_EPOCHS), "--patience", str(RESUME_EPOCHS), "--batch-size", "4"]
RESUME_FLAGS += ["--seed", "5", "--class-weights"]


def _args(shards, run, model: ModelConfig, *extra: str) -> list[str]:
    """Command-line arguments that train `model` on `shards` into `run`."""
    flags = []
    for name, value in model.to_dict().items():
        flags += ["--" + name.replace("_", "-"), ",".join(value) if name == "modalities" else str(value)]
    return ["--data", str(shards), "--run", str(run), *flags, *extra]


def _audio_style(genre: str) -> int:
    """The demo generator's audio style of a genre: genres of one style sound alike."""
    return audio_group(SYNTH_GENRES.index(genre))


def _all_songs(shards: Path):
    """Inputs and targets of every split, concatenated."""
    meta = read_meta(shards)
    batches = [
        batch
        for split in ("train", "val", "test")
        for batch in make_dataset(shards, split, meta, ("audio", "lyrics"), 64, training=False)
    ]
    inputs = {name: tf.concat([batch[0][name] for batch in batches], 0) for name in batches[0][0]}
    return meta, inputs, np.concatenate([batch[1].numpy() for batch in batches])


def test_fused_model_learns_and_predicts_from_audio_alone(learned_shards, tiny_model, tmp_path):
    run = tmp_path / "run"
    epochs = 12
    settings = dataclasses.replace(tiny_model, modality_dropout=0.5)
    flags = ["--epochs", str(epochs), "--patience", str(epochs), "--batch-size", "8"]
    assert main(_args(learned_shards, run, settings, *flags)) == 0

    assert sorted(path.name for path in run.iterdir()) == RUN_FILES
    assert read_run_summary(run)["finished"] is True
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == list(range(epochs))
    assert history["loss"].iloc[-1] < 0.7 * history["loss"].iloc[0]
    config = TrainConfig.load(run)
    meta, inputs, targets = _all_songs(learned_shards)
    assert config.genres == meta.genres and config.features == meta.features
    assert config.model.modality_dropout == 0.5

    model = keras.models.load_model(run / "model.keras")
    genres = targets.argmax(axis=1)
    with_lyrics = model.predict(inputs, verbose=0).argmax(axis=1)
    assert (with_lyrics == genres).mean() > 0.6  # chance: about 0.25

    # Lyrics removed: the genre pairs of one audio style cannot be told apart any more, but the
    # style itself still can, and every output stays a finite distribution.
    without = model.predict({**inputs, "words": tf.fill(tf.shape(inputs["words"]), "")}, verbose=0)
    assert np.isfinite(without).all()
    np.testing.assert_allclose(without.sum(axis=1), 1.0, rtol=1e-5)
    style = np.vectorize(lambda index: _audio_style(meta.genres[index]))
    assert (style(without.argmax(axis=1)) == style(genres)).mean() > 0.8  # chance: about 0.5


@pytest.fixture(scope="module")
def uninterrupted_run(learned_shards, tiny_model, tmp_path_factory) -> Path:
    """A run of RESUME_FLAGS that went through: what every interrupted one must end as."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(_args(learned_shards, run, tiny_model, *RESUME_FLAGS)) == 0
    return run


def _assert_same_history(run: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "history.csv"), pd.read_csv(reference / "history.csv"), check_exact=False, rtol=1e-6
    )


def test_same_seed_gives_the_same_metrics(learned_shards, tiny_model, uninterrupted_run, tmp_path):
    with op_determinism(False):
        assert main(_args(learned_shards, tmp_path / "run", tiny_model, *RESUME_FLAGS)) == 0
        assert not tf_framework_config.is_op_determinism_enabled()  # on for the run only
    _assert_same_history(tmp_path / "run", uninterrupted_run)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def test_killed_run_resumes_to_the_uninterrupted_history(
    learned_shards, tiny_model, uninterrupted_run, tmp_path, capsys
):
    run = tmp_path / "run"
    args = _args(learned_shards, run, tiny_model, *RESUME_FLAGS)
    backup_epoch = run / "backup" / "training_metadata.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "genre_fusion.train", *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while not _readable_json(backup_epoch):  # the first epoch is finished and backed up
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert read_run_summary(run) is None
    assert 1 <= json.loads(backup_epoch.read_text())["epoch"] < RESUME_EPOCHS

    assert main(args) == 0  # the same command again
    resumed_at = read_run_summary(run)["resumed_at_epoch"]
    assert resumed_at >= 1
    assert f"resuming at epoch {resumed_at + 1}" in capsys.readouterr().out
    # One row per epoch, each as the uninterrupted run has it: the data order, the dropout masks
    # and the optimizer state of the resumed epochs are those it would have had.
    _assert_same_history(run, uninterrupted_run)
    assert sorted(path.name for path in run.iterdir()) == RUN_FILES


class _CtrlC(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after batch `batch` of epoch `epoch`, as Ctrl-C would."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


@pytest.mark.parametrize("epoch", [0, 2], ids=["first epoch", "third epoch"])
def test_run_interrupted_in_an_epoch_resumes_to_the_uninterrupted_history(
    learned_shards, tiny_model, uninterrupted_run, tmp_path, monkeypatch, epoch
):
    run = tmp_path / "run"
    args = _args(learned_shards, run, tiny_model, *RESUME_FLAGS)
    recipe = train_module.training_callbacks
    with monkeypatch.context() as patch:
        patch.setattr(
            train_module, "training_callbacks", lambda *a, **k: [*recipe(*a, **k), _CtrlC(epoch, batch=1)]
        )
        assert main(args) == INTERRUPTED_EXIT_CODE  # Ctrl-C: a message, not a traceback
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == (epoch + 1 if epoch else 0)  # in the first epoch: an empty file

    assert main(args) == 0
    assert read_run_summary(run)["resumed_at_epoch"] == epoch
    _assert_same_history(run, uninterrupted_run)


def test_class_weights_select_the_epoch_by_evaluations_macro_f1(uninterrupted_run):
    summary = read_run_summary(uninterrupted_run)
    history = pd.read_csv(uninterrupted_run / "history.csv")
    assert summary["monitor"] == "val_macro_f1"
    assert summary["best_epoch"] == history["val_macro_f1"].idxmax()
    # The logged number is evaluation's, for the model kept.
    probabilities, targets, config = predict_split(uninterrupted_run, "val")
    scores = evaluate_predictions(probabilities, targets, config.genres, config.label_mode)
    assert scores["macro_f1"] == pytest.approx(summary["best"]["val_macro_f1"], abs=1e-9)


def test_mirrored_strategy_over_two_cpu_devices(learned_shards, tiny_model, tmp_path):
    run = tmp_path / "run"
    # Logical devices must be configured before TensorFlow initialises: a fresh process.
    code = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from genre_fusion.train import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = _args(learned_shards, run, tiny_model, "--epochs", "2", "--distribute")
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "2 replica(s) (MirroredStrategy)" in result.stdout
    assert read_run_summary(run)["replicas"] == 2


def test_finished_run_is_kept_unless_overwrite(learned_shards, tiny_model, tmp_path, capsys):
    run = tmp_path / "run"
    meta = read_meta(learned_shards)
    TrainConfig(data=str(learned_shards), run=str(run), model=tiny_model).with_shards(meta).save(run)
    (run / "run.json").write_text(json.dumps({"finished": True}))
    assert main(_args(learned_shards, run, tiny_model, "--epochs", "1")) == 2
    assert "finished run" in capsys.readouterr().err

    # --hparams sets the model (as tuning's best_hparams.json does), explicit flags win.
    hparams = tmp_path / "best_hparams.json"
    hparams.write_text(json.dumps({**tiny_model.to_dict(), "lstm_units": 6, "fusion": "gated"}))
    args = ["--data", str(learned_shards), "--run", str(run), "--hparams", str(hparams), "--fusion", "concat"]
    args += ["--modalities", "audio, lyrics"]  # spaces after commas are fine
    with pytest.warns(UserWarning, match="mixed-precision needs a GPU"):
        assert main(args + ["--epochs", "1", "--overwrite", "--mixed-precision"]) == 0
    model = TrainConfig.load(run).model
    assert (model.lstm_units, model.fusion, model.conv_filters) == (6, "concat", tiny_model.conv_filters)
    assert model.modalities == ("audio", "lyrics")
    summary = read_run_summary(run)
    assert summary["epochs"] == 1 and summary["precision"] == "float32"


def _copy_shards(shards: Path, to: Path, **meta_changes) -> Path:
    shutil.copytree(shards, to)
    meta = json.loads((to / META_FILE).read_text())
    (to / META_FILE).write_text(json.dumps({**meta, **meta_changes}))
    return to


def _unfinished_run(shards: Path, run: Path, model: ModelConfig, **changes) -> Path:
    """A run directory of an interrupted run on `shards`, with `changes` to its config."""
    config = TrainConfig(data=str(shards), run=str(run), model=model).with_shards(read_meta(shards))
    TrainConfig.from_dict({**config.to_dict(), **changes}).save(run)
    return run


def _missing_shards(tmp: Path, shards: Path, model: ModelConfig):
    return tmp / "nowhere", tmp / "run"


def _empty_shards_folder(tmp: Path, shards: Path, model: ModelConfig):
    return tmp, tmp / "run"


def _old_shard_format(tmp: Path, shards: Path, model: ModelConfig):
    return _copy_shards(shards, tmp / "old", format_version=0), tmp / "run"


def _empty_val_split(tmp: Path, shards: Path, model: ModelConfig):
    sizes = {**read_meta(shards).split_sizes, "val": 0}
    copy = _copy_shards(shards, tmp / "no_val", split_sizes=sizes)
    for path in copy.glob("val-*.tfrecord"):
        path.unlink()
    return copy, tmp / "run"


def _run_of_other_genres(tmp: Path, shards: Path, model: ModelConfig):
    return shards, _unfinished_run(shards, tmp / "run", model, genres=["jazz", "folk"])


def _run_with_other_settings(tmp: Path, shards: Path, model: ModelConfig):
    return shards, _unfinished_run(shards, tmp / "run", model, batch_size=3)


def _folder_that_is_not_a_run(tmp: Path, shards: Path, model: ModelConfig):
    (tmp / "notes.txt").write_text("mine")
    return shards, tmp


def _config_json_of_something_else(tmp: Path, shards: Path, model: ModelConfig):
    (tmp / "run").mkdir()
    (tmp / "run" / "config.json").write_text(json.dumps({"learning_rate": 1}))
    return shards, tmp / "run"


def _data_is_a_file(tmp: Path, shards: Path, model: ModelConfig):
    return shards / META_FILE, tmp / "run"


def _run_under_a_file(tmp: Path, shards: Path, model: ModelConfig):
    (tmp / "notes.txt").write_text("mine")
    return shards, tmp / "notes.txt" / "run"


BAD_INPUTS = {
    "missing shards": (_missing_shards, "does not exist.*data_prep build"),
    "empty shards folder": (_empty_shards_folder, "meta.json is missing"),
    "old shard format": (_old_shard_format, "format version 0.*rebuild"),
    "empty val split": (_empty_val_split, "val split .* has no songs"),
    "other genre vocabulary": (_run_of_other_genres, "does not match shards.*genres.*Use the shards"),
    "other settings": (_run_with_other_settings, "other settings .*batch_size 3 -> 16.*--overwrite"),
    "not a run directory": (_folder_that_is_not_a_run, "not a run directory"),
    "config.json of something else": (_config_json_of_something_else, "not the config.json of a .* run"),
    "data is a file": (_data_is_a_file, "--data .*meta.json is a file: expected the shards folder"),
    "run under a file": (_run_under_a_file, "--run .*notes.txt is a file, not a folder"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_stops_with_a_message(learned_shards, tiny_model, tmp_path, capsys, case):
    make, message = BAD_INPUTS[case]
    shards, run = make(tmp_path, learned_shards, tiny_model)
    assert main(_args(shards, run, tiny_model, "--epochs", "1")) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert re.search(message, error, flags=re.DOTALL), error
    assert not (run / "run.json").exists()
    assert "Traceback" not in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_folder_is_refused(learned_shards, tiny_model, tmp_path, capsys):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o555)
    try:
        assert main(_args(learned_shards, tmp_path / "locked" / "run", tiny_model, "--epochs", "1")) == 2
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert "locked is read-only; choose another --run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lstm-unit", "3"], None),  # argparse: exit 2 with usage
        (["--conv-blocks", "9"], "--conv-blocks must be at most 5: more pool the 32 mel bins"),
        (["--dropout", "1.5"], "--dropout must be a number in [0, 1), got 1.5"),
        (["--learning-rate", "-1"], "--learning-rate must be a finite number > 0, got -1.0"),
        (["--learning-rate", "nan"], "--learning-rate must be a finite number > 0, got nan"),
        (["--vocabulary-size", "1"], "--vocabulary-size must be an integer >= 3, got 1"),
        (["--embedding-dim", "0"], "--embedding-dim must be an integer >= 1, got 0"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--patience", "-1"], "--patience must be an integer >= 1, got -1"),
        (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        (["--modalities", "audio,video"], "--modalities must be one or both of audio, lyrics"),
        (["--fusion", "attention", "--dense-units", "30"], "--dense-units must be a multiple of 4"),
    ],
)
def test_bad_settings_stop_with_exit_code_2(learned_shards, tiny_model, tmp_path, capsys, extra, message):
    try:
        code = main(_args(learned_shards, tmp_path / "run", tiny_model) + extra)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    error = capsys.readouterr().err
    if message:
        assert error.startswith("error: ") and message in error, error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"lstm_unit": 3}, "unknown model settings ['lstm_unit']"),
        ({"lstm_units": "64"}, "lstm_units must be an integer >= 1, got '64'"),
        ({"dropout": True}, "dropout must be a number in [0, 1), got True"),
        ({"learning_rate": -0.1}, "learning_rate must be a finite number > 0, got -0.1"),
        ({"modalities": ["audio", 3]}, "modalities must be one or both of audio, lyrics"),
        ([16, 8], "must hold a JSON object of model settings"),
    ],
)
def test_bad_hparams_are_refused_naming_the_file(learned_shards, tmp_path, capsys, content, message):
    hparams = tmp_path / "best_hparams.json"
    hparams.write_text(json.dumps(content))
    args = ["--data", str(learned_shards), "--run", str(tmp_path / "run"), "--hparams", str(hparams)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert f"--hparams {hparams}" in error and message in error, error


def test_hparams_folder_is_refused(learned_shards, tmp_path, capsys):
    args = ["--data", str(learned_shards), "--run", str(tmp_path / "run"), "--hparams", str(tmp_path)]
    assert main(args) == 2
    assert f"--hparams {tmp_path} is a folder: expected a JSON file" in capsys.readouterr().err


def test_overwrite_replaces_only_what_training_and_evaluation_wrote(
    learned_shards, tiny_model, tmp_path, capsys
):
    run = tmp_path / "run"
    args = _args(learned_shards, run, tiny_model, "--epochs", "1", "--overwrite")
    assert main(args) == 0
    evaluate_run(run, "test")
    (run / MARKER_FILE).unlink()  # a run of the versions before the record of its files
    # `make demo` twice: train --overwrite, evaluate, and again.
    for _ in range(2):
        assert main(args) == 0
        assert not (run / "evaluation").exists()  # the old run's evaluation went with it
        evaluate_run(run, "test")
    assert read_run_summary(run)["finished"] is True

    # Anything else in the folder: refused, nothing removed.
    (run / "notes.txt").write_text("mine")
    before = sorted(path.name for path in run.iterdir())
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "notes.txt" in error and "nothing was removed" in error
    assert sorted(path.name for path in run.iterdir()) == before


def test_overwrite_keeps_a_folder_of_the_users_own(learned_shards, tiny_model, tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "notes.txt").write_text("my notes")
    (folder / "config.json").write_text(json.dumps({"learning_rate": 1}))
    assert main(_args(learned_shards, folder, tiny_model, "--epochs", "1", "--overwrite")) == 2
    assert "did not write there (config.json, logs): nothing was removed" in capsys.readouterr().err
    assert (folder / "logs" / "notes.txt").read_text() == "my notes"
    assert json.loads((folder / "config.json").read_text()) == {"learning_rate": 1}
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "logs"]


def test_diverging_run_stops_unfinished_with_exit_code_1(learned_shards, tiny_model, tmp_path, capsys):
    run = tmp_path / "run"
    with op_determinism(False):
        assert main(_args(learned_shards, run, tiny_model, "--epochs", "2", "--learning-rate", "1e30")) == 1
        assert not tf_framework_config.is_op_determinism_enabled()  # put back after a failure too
    error = capsys.readouterr().err
    assert re.search(r"error: training diverged: the training loss became (nan|inf) in epoch 1", error), error
    assert "--overwrite" in error
    assert read_run_summary(run) is None and not (run / "model.keras").exists()


def test_class_weights_balance_the_training_genres(learned_shards):
    meta = read_meta(learned_shards)
    counts = np.array(meta.genre_counts["train"])
    weights = class_weights(meta)
    weighted = np.array([weights[index] for index in range(len(meta.genres))]) * counts
    np.testing.assert_allclose(weighted, counts.sum() / len(counts))
    with pytest.raises(RunError, match="single-label"):
        class_weights(dataclasses.replace(meta, label_mode="multi"))
