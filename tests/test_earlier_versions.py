"""Files made by earlier versions still work: shards, a run and an export made by main at 81ca561,
before the packages (tests/data/made_by_81ca561/HOW.md says how they were made)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_fusion import evaluate, export, predict, train
from genre_fusion.data.shards import read_meta
from genre_fusion.model.cross_modal_attention import CrossModalAttention
from genre_fusion.model.modality_dropout import ModalityDropout
from genre_fusion.runs.loading import load_run, read_run_summary

MADE_BY_81CA561 = Path(__file__).parent / "data" / "made_by_81ca561"


@pytest.fixture
def earlier(tmp_path) -> Path:
    """A writable copy of the earlier version's shards/, run/ and model/."""
    copy = tmp_path / "earlier"
    shutil.copytree(MADE_BY_81CA561, copy)
    return copy


def _song(folder: Path, seconds: float = 2.0, rate: int = 22_050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    path = folder / "song.wav"
    sf.write(path, (0.4 * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32), rate)
    return path


def test_an_earlier_run_loads_with_this_versions_layers(earlier):
    config, model = load_run(earlier / "run")
    assert config.genres == read_meta(earlier / "shards").genres == ("metal", "pop", "rock")
    kinds = {type(layer) for layer in model.layers}
    assert {CrossModalAttention, ModalityDropout} <= kinds


@pytest.mark.e2e
def test_an_earlier_run_evaluates_on_earlier_shards(earlier, capsys):
    run = earlier / "run"
    assert evaluate.main(["--run", str(run), "--data", str(earlier / "shards"), "--split", "test"]) == 0
    metrics = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    assert metrics["songs"] == 8 and 0.0 <= metrics["accuracy"] <= 1.0


@pytest.mark.e2e
def test_earlier_shards_train_a_new_run_and_an_earlier_run_is_replaced_by_overwrite(earlier):
    shards, run = earlier / "shards", earlier / "run"
    settings = ["--epochs", "1", "--conv-blocks", "1", "--conv-filters", "2", "--lstm-units", "2"]
    assert train.main(["--data", str(shards), "--run", str(earlier / "new"), *settings]) == 0
    assert read_run_summary(earlier / "new")["epochs"] == 1
    before = pd.read_csv(run / "history.csv")
    assert len(before) == 2
    assert train.main(["--data", str(shards), "--run", str(run), "--overwrite", *settings]) == 0
    assert len(pd.read_csv(run / "history.csv")) == 1  # the earlier run's files were this project's


@pytest.mark.e2e
def test_an_earlier_run_exports_and_both_exports_classify_a_song(earlier, tmp_path, capsys):
    song = _song(tmp_path)
    new_export = tmp_path / "new_export"
    assert export.main(["--run", str(earlier / "run"), "--out", str(new_export)]) == 0
    capsys.readouterr()
    results = {}
    for name, model in {"earlier export": earlier / "model", "new export": new_export}.items():
        assert predict.main(["--model", str(model), str(song), "--json"]) == 0, name
        (line,) = capsys.readouterr().out.strip().splitlines()
        results[name] = json.loads(line)
    earlier_genres = [entry["genre"] for entry in results["earlier export"]["genres"]]
    assert sorted(earlier_genres) == ["metal", "pop", "rock"]
    # One run, two exports: the same probabilities, whichever version exported it.
    for a, b in zip(results["earlier export"]["genres"], results["new export"]["genres"], strict=True):
        assert a["genre"] == b["genre"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
