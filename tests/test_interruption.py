"""Ctrl-C ends a resumable command with one line and exit 130, not a traceback."""

import pytest

import data_prep.__main__ as data_prep_cli
import tuning.__main__ as tuning_cli
from data_prep import builder
from genre_fusion.interruption import INTERRUPTED_EXIT_CODE
from genre_fusion.training import cli as train_cli

pytest_plugins = ["tests.training_fixtures"]
pytestmark = pytest.mark.e2e


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("module", "target", "cli", "arguments", "said"),
    [
        (
            train_cli,
            "train",
            train_cli.main,
            ["--data", "{shards}", "--run", "{tmp}/run"],
            "rerun the same command",
        ),
        (
            builder,
            "build_shards",
            data_prep_cli.main,
            ["build", "--manifest", "{manifest}", "--out", "{tmp}/shards"],
            "finished shards",
        ),
        (tuning_cli, "run_search", tuning_cli.main, ["--data", "{shards}", "--out", "{tmp}/s"], "trials"),
    ],
    ids=["train", "build", "tuning"],
)
def test_ctrl_c_says_how_to_resume(
    module, target, cli, arguments, said, learned_shards, manifest_collection, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(module, target, _interrupt)
    values = {"shards": learned_shards, "manifest": manifest_collection, "tmp": tmp_path}
    assert cli([argument.format(**values) for argument in arguments]) == INTERRUPTED_EXIT_CODE
    error = capsys.readouterr().err
    assert "interrupted:" in error and said in error and "Traceback" not in error

