"""Which audio style and which lyric topic each genre draws from: the design that makes fusion pay.

``GENRES`` (``resources/genres.json``) names the genres in order; a collection of K genres uses
the first K. ``AUDIO_STYLES`` (``resources/audio_styles.json``) holds one ``AudioStyle`` per
style; the lyric topics' words are in ``lyrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_prep.synth.resource_tables import load_table

GENRES: tuple[str, ...] = load_table("genres")


@dataclass(frozen=True)
class AudioStyle:
    """How one style's songs sound, and the Spotify features id_metadata.csv reports for them."""

    name: str
    tempo: tuple[float, float]  # bpm range
    swing: float  # delay of off-beat eighths, in 16th steps
    kick: str  # 16 steps per bar: x = full hit, o = soft hit, . = none
    snare: str
    hat: str
    hat_decay: float  # s
    bass: str
    bass_walk: bool  # walk the scale instead of holding the chord root
    bass_harmonics: tuple[float, ...]
    melody_step: int  # melody note length in 16th steps
    rest_prob: float
    scale: tuple[int, ...]  # semitones above the tonic
    mode: int  # Spotify's mode: 1 major, 0 minor
    melody_base: int  # MIDI C below the melody's lowest tonic
    harmonics: tuple[float, ...]  # melody amplitude of harmonic 1, 2, ...
    attack: float  # s
    decay: float  # s
    drive: float  # tanh distortion, 0 = clean
    energy: float  # mean Spotify energy, danceability and valence
    danceability: float
    valence: float


AUDIO_STYLES = tuple(AudioStyle(**style) for style in load_table("audio_styles"))


def audio_group(genre: int) -> int:
    """Audio style index of genre index ``genre``."""
    return genre // 2


def lyric_group(genre: int, k: int) -> int:
    """Lyric topic index of genre index ``genre`` among ``k`` genres."""
    # With two genres the shifted pairing would put both in one topic as well as one style.
    return genre if k == 2 else ((genre + 1) % k) // 2
