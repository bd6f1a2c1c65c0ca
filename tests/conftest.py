"""Shared fixtures: tiny generated audio and collections, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_fusion.features.config import DEFAULT_SAMPLE_RATE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def plucked_tone(
    seconds: float, frequency: float = 440.0, rate: int = DEFAULT_SAMPLE_RATE, channels: int = 1
) -> np.ndarray:
    """A plucked-string-like tone [samples] or [samples, channels], float32."""
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.5 * np.sin(2 * np.pi * frequency * t) * np.exp(-((t % 0.5) * 3))
    signal = signal.astype(np.float32)
    return signal if channels == 1 else np.stack([signal] * channels, axis=1)


def write_manifest_collection(root: Path, songs: int = 36, artists: int = 12, seconds: float = 2.0) -> Path:
    """A manifest collection of `songs` WAV/MP3 files with lyrics, 3 genres; returns the CSV path."""
    genres = ("rock", "pop", "jazz")
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "text").mkdir(exist_ok=True)
    rows = ["id,audio,lyrics,genres,artist"]
    for index in range(songs):
        artist = index % artists
        genre = genres[artist % 3]
        extension = "mp3" if index % 2 else "wav"
        sf.write(
            root / "audio" / f"s{index}.{extension}",
            plucked_tone(seconds, 220.0 * (1 + artist % 3)),
            DEFAULT_SAMPLE_RATE,
        )
        (root / "text" / f"s{index}.txt").write_text(f"[Verse]\nsinging {genre} songs tonight\n")
        rows.append(f's{index},audio/s{index}.{extension},text/s{index}.txt,"{genre},live",artist{artist}')
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


@pytest.fixture
def tone():
    """The function `plucked_tone(seconds, frequency=440.0, rate=DEFAULT_SAMPLE_RATE, channels=1)`."""
    return plucked_tone


@pytest.fixture
def manifest_collection(tmp_path: Path) -> Path:
    return write_manifest_collection(tmp_path / "collection")


@pytest.fixture(scope="module")
def shared_manifest_collection(tmp_path_factory) -> Path:
    """One `manifest_collection` for a whole module, for commands refused before they read a song:
    nothing changes it, and 36 songs need not be written for each."""
    return write_manifest_collection(tmp_path_factory.mktemp("shared") / "collection")
