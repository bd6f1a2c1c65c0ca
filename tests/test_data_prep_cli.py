"""`python -m data_prep`: every number and path is checked before any work, with exit 2 and a message."""

import os
from pathlib import Path

import pytest

from data_prep.__main__ import main


def exit_code(arguments: list[str]) -> int:
    """main's status, also when argparse ends the run itself (it exits 2 on a bad option)."""
    try:
        return main(arguments)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--clip-seconds", "-3"], "--clip-seconds"),
        (["--clip-seconds", "0"], "--clip-seconds"),
        (["--clip-seconds", "0.5"], "--clip-seconds"),  # shorter than any song may be
        (["--sample-rate", "0"], "--sample-rate"),
        (["--n-fft", "0"], "--n-fft"),
        (["--hop-length", "0"], "--hop-length"),
        (["--mel-bins", "0"], "--mel-bins"),
        (["--hop-length", "4096"], "--hop-length 4096 is larger than --n-fft 2048"),
        (["--mel-bins", "2000"], "--mel-bins 2000 is more than the 1025 frequency bins"),
        (["--mel-fmax", "20000"], "--mel-fmax 20000.0 must satisfy 0 <= fmin < fmax <= 11025"),
        (["--mel-fmin", "nan"], "--mel-fmin nan"),
        (["--top-db", "-80"], "--top-db"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--max-tokens", "-1"], "--max-tokens"),
        (["--shard-size", "0"], "--shard-size"),
        (["--shard-size", "-1"], "--shard-size"),
        (["--workers", "-1"], "--workers"),
        (["--seed", "-1"], "--seed"),
        (["--limit", "0"], "--limit"),
        (["--limit", "-5"], "--limit"),
        (["--top-genres", "0"], "--top-genres"),
        (["--top-genres", "-1"], "--top-genres"),
        (["--qui"], "unrecognized arguments: --qui"),  # no abbreviations of --quiet
    ],
)
def test_build_rejects_bad_numbers_before_any_work(
    shared_manifest_collection: Path, tmp_path: Path, capsys, options: list[str], named: str
):
    out = tmp_path / "shards"
    manifest = str(shared_manifest_collection)
    assert exit_code(["build", "--manifest", manifest, "--out", str(out), *options]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--songs", "0"], "--songs"),
        (["--genres", "1"], "--genres"),
        (["--seconds", "0"], "--seconds"),
        (["--seed", "-1"], "--seed"),
        (["--fault"], "unrecognized arguments: --fault"),
    ],
)
def test_synth_rejects_bad_numbers_before_any_work(tmp_path: Path, capsys, options: list[str], named: str):
    out = tmp_path / "demo"
    assert exit_code(["synth", "--out", str(out), *options]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_the_top_parser_takes_no_abbreviated_option(capsys):
    assert exit_code(["--hel"]) == 2
    assert "show this help message" not in capsys.readouterr().out  # --hel is not --help


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--languages", "en"], "empty selection"),
        (["--split", "0.5,0.5"], "--split"),
        (["--text-encoder", "{tmp}/no-module"], "--text-encoder learned"),
    ],
)
def test_cli_structural_errors_exit_2_with_a_message(
    shared_manifest_collection: Path, tmp_path: Path, capsys, options: list[str], message: str
):
    options = [option.format(tmp=tmp_path) for option in options]
    manifest = str(shared_manifest_collection)
    arguments = ["build", "--manifest", manifest, "--out", str(tmp_path / "o"), *options]
    assert main(arguments) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a refused build leaves no folder behind


def test_cli_names_a_manifest_that_does_not_exist(tmp_path: Path, capsys):
    assert main(["build", "--manifest", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "none.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["synth", "build"])
def test_an_output_folder_that_cannot_be_created_is_named(
    shared_manifest_collection: Path, tmp_path: Path, capsys, command: str
):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    build_source = ["--manifest", str(shared_manifest_collection), "--clip-seconds", "2"]
    source = build_source if command == "build" else []
    for out in (blocker / "out", blocker):
        assert exit_code([command, *source, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert f"--out {out}" in error and "Traceback" not in error
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_output_folder_is_named(shared_manifest_collection: Path, tmp_path: Path, capsys):
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    out = read_only / "shards"
    assert exit_code(["build", "--manifest", str(shared_manifest_collection), "--out", str(out)]) == 2
    assert f"--out {out}" in capsys.readouterr().err
