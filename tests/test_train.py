"""`python -m genre_fusion.train` end to end on tiny shards: learning, the run directory, songs
without lyrics, resume after kill -9, determinism, MirroredStrategy and every bad input."""

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

from data_prep.synth import GENRES as SYNTH_GENRES
from data_prep.synth import audio_group
from genre_fusion.dataset import make_dataset
from genre_fusion.model import ModelConfig
from genre_fusion.shards import META_FILE, read_meta
from genre_fusion.train import class_weights, main
from genre_fusion.train_config import RunError, TrainConfig, read_run_summary

pytest_plugins = ["tests.training_fixtures"]

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
SUBPROCESS_TIMEOUT_S = 300
RUN_FILES = ["config.json", "history.csv", "logs", "model.keras", "run.json"]


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


def test_same_seed_gives_the_same_metrics(learned_shards, tiny_model, tmp_path):
    histories = []
    flags = ["--epochs", "2", "--seed", "5", "--class-weights"]
    for name in ("first", "second"):
        assert main(_args(learned_shards, tmp_path / name, tiny_model, *flags)) == 0
        histories.append(pd.read_csv(tmp_path / name / "history.csv"))
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def test_killed_run_resumes_from_its_backup(learned_shards, tiny_model, tmp_path, capsys):
    run = tmp_path / "run"
    epochs = 10
    flags = ["--epochs", str(epochs), "--patience", str(epochs), "--batch-size", "4"]
    args = _args(learned_shards, run, tiny_model, *flags)
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
    assert 1 <= json.loads(backup_epoch.read_text())["epoch"] < epochs

    assert main(args) == 0  # the same command again
    resumed_at = read_run_summary(run)["resumed_at_epoch"]
    assert resumed_at >= 1
    assert f"resuming at epoch {resumed_at + 1}" in capsys.readouterr().out
    # One row per epoch: the rows before the kill, then the resumed epochs, no restart.
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == list(range(epochs))
    assert sorted(path.name for path in run.iterdir()) == RUN_FILES


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
    with pytest.warns(UserWarning, match="mixed-precision needs a GPU"):
        assert main(args + ["--epochs", "1", "--overwrite", "--mixed-precision"]) == 0
    model = TrainConfig.load(run).model
    assert (model.lstm_units, model.fusion, model.conv_filters) == (6, "concat", tiny_model.conv_filters)
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


BAD_INPUTS = {
    "missing shards": (_missing_shards, "does not exist.*data_prep build"),
    "empty shards folder": (_empty_shards_folder, "meta.json is missing"),
    "old shard format": (_old_shard_format, "format version 0.*rebuild"),
    "empty val split": (_empty_val_split, "val split .* has no songs"),
    "other genre vocabulary": (_run_of_other_genres, "does not match shards.*genres.*Use the shards"),
    "other settings": (_run_with_other_settings, "other settings .*batch_size 3 -> 16.*--overwrite"),
    "not a run directory": (_folder_that_is_not_a_run, "not a run directory"),
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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lstm-unit", "3"], None),  # argparse: exit 2 with usage
        (["--conv-blocks", "9"], "at most 5 conv blocks"),
        (["--dropout", "1.5"], "dropout must be in"),
    ],
)
def test_bad_settings_stop_with_exit_code_2(learned_shards, tiny_model, tmp_path, capsys, extra, message):
    try:
        code = main(_args(learned_shards, tmp_path / "run", tiny_model) + extra)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    if message:
        assert message in capsys.readouterr().err


def test_unknown_hparams_are_refused(learned_shards, tmp_path, capsys):
    hparams = tmp_path / "best_hparams.json"
    hparams.write_text(json.dumps({"lstm_unit": 3}))
    args = ["--data", str(learned_shards), "--run", str(tmp_path / "run"), "--hparams", str(hparams)]
    assert main(args) == 2
    assert "unknown model settings ['lstm_unit']" in capsys.readouterr().err


def test_class_weights_balance_the_training_genres(learned_shards):
    meta = read_meta(learned_shards)
    counts = np.array(meta.genre_counts["train"])
    weights = class_weights(meta)
    weighted = np.array([weights[index] for index in range(len(meta.genres))]) * counts
    np.testing.assert_allclose(weighted, counts.sum() / len(counts))
    with pytest.raises(RunError, match="single-label"):
        class_weights(dataclasses.replace(meta, label_mode="multi"))
