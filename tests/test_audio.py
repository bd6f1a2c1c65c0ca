from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_fusion.audio import AudioDecodeError, decode_audio
from tests.conftest import SAMPLE_RATE, tone


def dominant_frequency(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("extension", ["mp3", "wav", "flac", "ogg"])
def test_every_format_decodes_to_a_mono_clip_of_fixed_length(tmp_path: Path, extension: str):
    path = tmp_path / f"song.{extension}"
    sf.write(path, tone(2.0, 440.0, rate=44_100, channels=2), 44_100)

    clip = decode_audio(path, sample_rate=SAMPLE_RATE, clip_seconds=3.0)

    assert clip.waveform.dtype == np.float32
    assert clip.waveform.shape == (3 * SAMPLE_RATE,)
    assert clip.seconds == pytest.approx(2.0, abs=0.06)  # MP3 adds encoder padding
    assert np.all(clip.waveform[int(2.1 * SAMPLE_RATE) :] == 0)
    # resampled, not re-pitched
    assert dominant_frequency(clip.waveform[:SAMPLE_RATE], SAMPLE_RATE) == pytest.approx(440.0, abs=3)


def test_bytes_and_path_give_the_same_clip_and_long_audio_is_cut(tmp_path: Path):
    path = tmp_path / "long.flac"
    sf.write(path, tone(5.0), SAMPLE_RATE)
    from_path = decode_audio(path, SAMPLE_RATE, clip_seconds=2.0)
    from_bytes = decode_audio(path.read_bytes(), SAMPLE_RATE, clip_seconds=2.0)
    np.testing.assert_array_equal(from_path.waveform, from_bytes.waveform)
    assert from_path.seconds == 2.0
    np.testing.assert_allclose(from_path.waveform, tone(5.0)[: 2 * SAMPLE_RATE], atol=1e-4)


def test_faulty_audio_raises_with_a_stable_reason(tmp_path: Path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(tmp_path / "short.wav", tone(0.5), SAMPLE_RATE)
    sf.write(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE * 2, dtype=np.float32), SAMPLE_RATE)
    expected = {
        "missing.mp3": "missing audio",
        "empty.mp3": "empty audio file",
        "corrupt.mp3": "undecodable audio",
        "short.wav": "too short",
        "silent.wav": "silent audio",
    }
    for name, reason in expected.items():
        with pytest.raises(AudioDecodeError) as raised:
            decode_audio(tmp_path / name, SAMPLE_RATE, clip_seconds=2.0)
        assert raised.value.reason == reason, name
    with pytest.raises(AudioDecodeError, match="empty audio file"):
        decode_audio(b"", SAMPLE_RATE, clip_seconds=2.0)
