"""Audio decoding: any file soundfile reads (MP3, WAV, FLAC, OGG) to a fixed-length mono clip.

The same function serves `data_prep build`, `genre_fusion.predict` and the benchmarks, so a song
is turned into samples one way only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

MIN_SECONDS = 1.0
# Peak below this (about -80 dBFS) is digital silence or a dead recording.
SILENCE_PEAK = 1e-4


class AudioDecodeError(ValueError):
    """A clip that cannot become model input; `reason` is a short stable label for rejected.csv."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Clip:
    """`waveform`: float32 [clip_samples], mono, zero-padded; `seconds`: real audio length kept."""

    waveform: np.ndarray
    seconds: float


def decode_audio(
    source: str | Path | bytes, sample_rate: int, clip_seconds: float, min_seconds: float = MIN_SECONDS
) -> Clip:
    """Decode `source` (a path or the file's bytes) to a mono float32 clip at `sample_rate`.

    Longer audio is cut at `clip_seconds`, shorter audio zero-padded. Raises `AudioDecodeError`
    with reason `missing audio`, `empty audio file`, `undecodable audio`, `too short` or
    `silent audio`.
    """
    if isinstance(source, bytes):
        if not source:
            raise AudioDecodeError("empty audio file")
        handle = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise AudioDecodeError("missing audio", str(path))
        if path.stat().st_size == 0:
            raise AudioDecodeError("empty audio file", str(path))
        handle = path

    clip_samples = int(round(sample_rate * clip_seconds))
    try:
        with sf.SoundFile(handle) as audio_file:
            native_rate = audio_file.samplerate
            # Read only what the clip needs: decoding the rest of a long file is wasted time.
            needed = int(np.ceil(clip_seconds * native_rate)) + 1
            samples = audio_file.read(frames=needed, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioDecodeError("undecodable audio", str(error)) from error

    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if native_rate != sample_rate:
        mono = soxr.resample(mono, native_rate, sample_rate)
    mono = np.ascontiguousarray(mono[:clip_samples], dtype=np.float32)

    seconds = len(mono) / sample_rate
    if seconds < min_seconds:
        raise AudioDecodeError("too short", f"{seconds:.2f} s < {min_seconds} s")
    if not np.isfinite(mono).all() or np.abs(mono).max() < SILENCE_PEAK:
        raise AudioDecodeError("silent audio")
    waveform = np.zeros(clip_samples, dtype=np.float32)
    waveform[: len(mono)] = mono
    return Clip(waveform=waveform, seconds=seconds)
