"""Audio decoding: any file soundfile reads (MP3, WAV, FLAC, OGG) to a fixed-length mono clip.

The same function serves `data_prep build`, `genre_fusion.predict` and the benchmarks, so a song
is turned into samples one way only.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

MIN_SECONDS = 1.0
# Peak below this (about -80 dBFS) is digital silence or a dead recording.
SILENCE_PEAK = 1e-4
# A file that ends more than this share of its declared length early is truncated.
TRUNCATION_TOLERANCE = 0.02
# libsndfile's log line for a chunk (WAV, AIFF, W64) whose declared size differs from what the file holds.
SHORTER_THAN_DECLARED = re.compile(r"^\s*\S+\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers that cannot know the length write a placeholder of at least this size there.
UNKNOWN_SIZE = 0x7FFFF000
# The headers that declare an MP3's length (frame count) in its first frame; without one,
# libsndfile estimates the length from the file size, tags included, so a cut file looks whole.
MP3_LENGTH_HEADERS = (b"Xing", b"Info", b"VBRI")
MP3_HEADER_SPAN = 48  # bytes of the first frame that hold one (after side info: at most 36)
# libsndfile's error 7 reads "File does not exist or is not a regular file": for content that is
# there (the file was checked) it means no decoder recognised it, so its text would mislead.
SF_ERROR_UNRECOGNISED_CONTENT = 7


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


def _mp3_first_frame(source: Path | bytes) -> bytes:
    """The first `MP3_HEADER_SPAN` bytes after the ID3v2 tag, if any, of an MP3 file."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as file:
        head = file.read(10)
        tag = 0
        if head[:3] == b"ID3" and len(head) == 10:  # a 10-byte header with a 7-bit ("syncsafe") size
            footer = 10 * (head[5] >> 4 & 1)
            tag = 10 + sum(byte << (7 * (3 - i)) for i, byte in enumerate(head[6:10])) + footer
        file.seek(tag)
        return file.read(MP3_HEADER_SPAN)


def _missing_share(audio_file: sf.SoundFile, decoded_frames: int, source: Path | bytes) -> float:
    """How much of the length `audio_file` (read from `source`) declares is missing after the
    `decoded_frames` that ended it: 0 for a complete file, or one whose header declares no length."""
    shares = [
        1 - int(actual) / int(declared)
        for declared, actual in SHORTER_THAN_DECLARED.findall(audio_file.extra_info)
        if int(actual) < int(declared) < UNKNOWN_SIZE
    ]
    declared = audio_file.frames
    if audio_file.format == "MP3" and declared > decoded_frames:
        if any(tag in _mp3_first_frame(source) for tag in MP3_LENGTH_HEADERS):
            shares.append(1 - decoded_frames / declared)
    return max(shares, default=0.0)


def _downmix(samples: np.ndarray) -> np.ndarray:
    """float32 [frames, channels] -> [frames], the channels' mean. Summed column by column: numpy's
    `mean(axis=1)` over 2 channels is about 20x slower, a large share of decoding a stereo clip."""
    mono = samples[:, 0].copy()
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    if samples.shape[1] > 1:
        mono *= np.float32(1 / samples.shape[1])
    return mono


def decode_audio(
    source: str | Path | bytes, sample_rate: int, clip_seconds: float, min_seconds: float = MIN_SECONDS
) -> Clip:
    """Decode `source` (a path or the file's bytes) to a mono float32 clip at `sample_rate`.

    Longer audio is cut at `clip_seconds`, shorter audio zero-padded. Raises `AudioDecodeError`
    with reason `missing audio`, `empty audio file`, `undecodable audio` (not an audio file, or
    it fails mid-stream), `truncated audio` (it ends before the clip and more than 2% before the
    length its header declares), `too short`, `invalid samples (NaN/inf)` or `silent audio`.
    """
    if isinstance(source, bytes):
        if not source:
            raise AudioDecodeError("empty audio file")
        handle, where = io.BytesIO(source), "the given bytes"
    else:
        source = Path(source)
        if not source.is_file():
            raise AudioDecodeError("missing audio", str(source))
        if source.stat().st_size == 0:
            raise AudioDecodeError("empty audio file", str(source))
        handle, where = source, str(source)

    clip_samples = int(round(sample_rate * clip_seconds))
    try:
        audio_file = sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        reason = getattr(error, "error_string", str(error))
        known = getattr(error, "code", None) != SF_ERROR_UNRECOGNISED_CONTENT
        raise AudioDecodeError(
            "undecodable audio", f"not a readable audio file ({where}{': ' + reason if known else ''})"
        ) from error
    with audio_file:
        native_rate = audio_file.samplerate
        # Read only what the clip needs: decoding the rest of a long file is wasted time.
        needed = int(np.ceil(clip_seconds * native_rate)) + 1
        try:
            samples = audio_file.read(frames=needed, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as error:
            raise AudioDecodeError("undecodable audio", f"{where}: {error}") from error
        # Only a file that ends before the clip is full loses audio the clip needs.
        missing = _missing_share(audio_file, len(samples), source) if len(samples) < needed else 0.0
    if missing > TRUNCATION_TOLERANCE:
        seconds = len(samples) / native_rate
        raise AudioDecodeError(
            "truncated audio",
            f"{where}: the audio ends after {seconds:.2f} s, {missing:.0%} short of the length declared",
        )

    mono = _downmix(samples)
    if native_rate != sample_rate:
        mono = soxr.resample(mono, native_rate, sample_rate)
    mono = np.ascontiguousarray(mono[:clip_samples], dtype=np.float32)

    seconds = len(mono) / sample_rate
    if seconds < min_seconds:
        raise AudioDecodeError("too short", f"{seconds:.2f} s < {min_seconds} s")
    if not np.isfinite(mono).all():
        raise AudioDecodeError("invalid samples (NaN/inf)", where)
    if np.abs(mono).max() < SILENCE_PEAK:
        raise AudioDecodeError("silent audio")
    waveform = np.zeros(clip_samples, dtype=np.float32)
    waveform[: len(mono)] = mono
    return Clip(waveform=waveform, seconds=seconds)


class DecoderMessages:
    """Sends file descriptor 2 to a temporary file while open: C libraries (libmpg123's notes such
    as "Note: Illegal Audio-MPEG-Header") print there from the decoding threads, and would break
    progress bars and tables. `terminal` is the real stderr, for a bar; `text` the captured output,
    once closed (`summary()` says it in one line)."""

    def __enter__(self) -> DecoderMessages:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._capture = tempfile.TemporaryFile()
        os.dup2(self._capture.fileno(), 2)
        self.terminal = os.fdopen(os.dup(self._saved), "w")
        return self

    def __exit__(self, kind, error, traceback) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self.terminal.close()
        self._capture.seek(0)
        self.text = self._capture.read().decode("utf-8", "replace")
        self._capture.close()
        if kind is not None:  # a failing build shows everything that led to it
            sys.stderr.write(self.text)

    def summary(self) -> str:
        """'' when nothing was captured, else one line: how many lines, and the first."""
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        if not lines:
            return ""
        return f"the audio decoder and other libraries printed {len(lines)} lines (first: {lines[0]!r})"
