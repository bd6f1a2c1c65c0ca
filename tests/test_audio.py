import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_fusion.features.audio import AudioDecodeError, decode_audio
from genre_fusion.features.config import DEFAULT_SAMPLE_RATE as SAMPLE_RATE


def dominant_frequency(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("extension", ["mp3", "wav", "flac", "ogg"])
def test_every_format_decodes_to_a_mono_clip_of_fixed_length(tmp_path: Path, tone, extension: str):
    path = tmp_path / f"song.{extension}"
    sf.write(path, tone(2.0, 440.0, rate=44_100, channels=2), 44_100)

    clip = decode_audio(path, sample_rate=SAMPLE_RATE, clip_seconds=3.0)

    assert clip.waveform.dtype == np.float32
    assert clip.waveform.shape == (3 * SAMPLE_RATE,)
    assert clip.seconds == pytest.approx(2.0, abs=0.06)  # MP3 adds encoder padding
    assert np.all(clip.waveform[int(2.1 * SAMPLE_RATE) :] == 0)
    # resampled, not re-pitched
    assert dominant_frequency(clip.waveform[:SAMPLE_RATE], SAMPLE_RATE) == pytest.approx(440.0, abs=3)


def test_bytes_and_path_give_the_same_clip_and_long_audio_is_cut(tmp_path: Path, tone):
    path = tmp_path / "long.flac"
    sf.write(path, tone(5.0), SAMPLE_RATE)
    from_path = decode_audio(path, SAMPLE_RATE, clip_seconds=2.0)
    from_bytes = decode_audio(path.read_bytes(), SAMPLE_RATE, clip_seconds=2.0)
    np.testing.assert_array_equal(from_path.waveform, from_bytes.waveform)
    assert from_path.seconds == 2.0
    np.testing.assert_allclose(from_path.waveform, tone(5.0)[: 2 * SAMPLE_RATE], atol=1e-4)


def test_faulty_audio_raises_with_a_stable_reason(tmp_path: Path, tone):
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(tmp_path / "short.wav", tone(0.5), SAMPLE_RATE)
    sf.write(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE * 2, dtype=np.float32), SAMPLE_RATE)
    invalid = tone(2.0)
    invalid[100] = np.nan
    sf.write(tmp_path / "nan.wav", invalid, SAMPLE_RATE, subtype="FLOAT")
    expected = {
        "missing.mp3": "missing audio",
        "empty.mp3": "empty audio file",
        "corrupt.mp3": "undecodable audio",
        "short.wav": "too short",
        "silent.wav": "silent audio",
        "nan.wav": "invalid samples (NaN/inf)",
    }
    for name, reason in expected.items():
        with pytest.raises(AudioDecodeError) as raised:
            decode_audio(tmp_path / name, SAMPLE_RATE, clip_seconds=2.0)
        assert raised.value.reason == reason, name
    with pytest.raises(AudioDecodeError, match="empty audio file"):
        decode_audio(b"", SAMPLE_RATE, clip_seconds=2.0)


def test_a_file_no_decoder_recognises_is_named_so(tmp_path: Path):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioDecodeError) as raised:
        decode_audio(path, SAMPLE_RATE, clip_seconds=2.0)
    assert str(raised.value).startswith(f"undecodable audio: not a readable audio file ({path}")
    assert "does not exist" not in str(raised.value)


@pytest.fixture
def encoded(tone):
    """`encoded(seconds, extension)`: the bytes of a tone's audio file in that format."""

    def encode(seconds: float, extension: str) -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, tone(seconds), SAMPLE_RATE, format=extension.upper())
        return buffer.getvalue()

    return encode


@pytest.mark.parametrize("extension", ["mp3", "wav"])
def test_a_file_cut_short_of_its_declared_length_is_truncated(tmp_path: Path, encoded, extension: str):
    whole = encoded(6.0, extension)
    path = tmp_path / f"cut.{extension}"
    path.write_bytes(whole[: int(0.3 * len(whole))])
    with pytest.raises(AudioDecodeError, match=r"the audio ends after 1\.\d+ s, \d+% short") as raised:
        decode_audio(path, SAMPLE_RATE, clip_seconds=4.0)
    assert raised.value.reason == "truncated audio"
    # The first 30% still fills a short clip: nothing the clip needs is lost.
    assert decode_audio(path, SAMPLE_RATE, clip_seconds=1.2).seconds == 1.2


@pytest.mark.parametrize("extension", ["mp3", "wav"])
def test_complete_files_are_not_truncated(tmp_path: Path, encoded, extension: str):
    path = tmp_path / f"song.{extension}"
    path.write_bytes(encoded(2.0, extension))
    assert decode_audio(path, SAMPLE_RATE, clip_seconds=4.0).seconds == pytest.approx(2.0, abs=0.06)
    path.write_bytes(encoded(6.0, extension))  # read only as far as the clip
    assert decode_audio(path, SAMPLE_RATE, clip_seconds=2.0).seconds == 2.0


def test_an_mp3_without_a_length_header_is_not_judged_by_its_estimated_length(tmp_path: Path, encoded):
    whole = encoded(2.0, "mp3")
    # Without its Xing header and behind a large ID3 tag (cover art), libsndfile estimates the
    # length from the file size and overstates it several times.
    header = whole.find(b"Xing")
    tag_size = 100_000
    tag = b"ID3\x04\x00\x00" + bytes((tag_size >> shift) & 0x7F for shift in (21, 14, 7, 0)) + bytes(tag_size)
    path = tmp_path / "tagged.mp3"
    path.write_bytes(tag + whole[:header] + bytes(4) + whole[header + 4 :])
    assert sf.info(path).frames > 4 * 2 * SAMPLE_RATE
    assert decode_audio(path, SAMPLE_RATE, clip_seconds=4.0).seconds > 1.5


@pytest.mark.parametrize("channels", [2, 3])
def test_channels_are_averaged(tmp_path: Path, channels: int):
    rng = np.random.default_rng(channels)
    samples = (0.3 * rng.standard_normal((2 * SAMPLE_RATE, channels))).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")

    clip = decode_audio(path, SAMPLE_RATE, clip_seconds=2.0)

    np.testing.assert_allclose(clip.waveform, samples.mean(axis=1), atol=1e-6)
