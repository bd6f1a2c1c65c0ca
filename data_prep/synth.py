"""A synthetic demo collection in Music4All's exact layout, built so that fusion visibly pays off.

``write_demo_collection(out_dir, songs, genres=K, ...)`` writes the five tab-separated CSVs of
Music4All (``id_information``, ``id_genres``, ``id_lang``, ``id_metadata``, ``id_tags``), one
MP3 clip per song in ``audios/`` and one lyrics file per song in ``lyrics/``; with ``faults=True``
it adds one broken song per fault of ``FAULTS`` and lists them in ``faults.csv`` (id, fault).
``synth.json`` records the settings. Synth writes only into a new or empty folder or one holding
its own collection (the same settings again: nothing to do), and with ``overwrite`` deletes only
what it recorded writing (``genre_fusion.owned_outputs``).

Each genre draws its audio from an audio style and its lyrics from a lyric topic. Genres that
share a style have identically distributed audio, genres that share a topic have identically
distributed lyrics, and no two genres share both, so audio alone confuses some pairs, lyrics alone
confuse other pairs and only the two together separate every genre. Genre ``g`` of ``K`` uses
style ``g // 2`` and topic ``((g + 1) % K) // 2`` (``g`` when K = 2), e.g. for K = 6:

=====  ==========  ==================  =====================
g      genre       audio style         lyric topic
=====  ==========  ==================  =====================
0      rock        0 band              0 love
1      metal       0 band              1 street
2      pop         1 synth             1 street
3      electronic  1 synth             2 night
4      hip hop     2 groove            2 night
5      reggae      2 groove            0 love
=====  ==========  ==================  =====================

With an odd K the last genre has a style of its own and closes the cycle of topics with genre 0
(K = 5: styles 0,0,1,1,2 and topics 0,1,1,2,0).

Audio is rendered with numpy: a 16-step drum pattern (kick = decaying sine sweep, snare =
high-passed noise burst plus a tone, hi-hat = short high noise), a bass line following a chord
progression and a melody random walk in the style's scale, each with the style's harmonic
timbre, envelope and drive, plus a little noise. Each song draws its tempo, key, notes and mix
within its style; ``id_metadata.csv`` reports that tempo, key and mode. Lyrics mix stop words,
filler words and the topic's words into tagged sections (``[Verse 1]``, ``[Chorus]``, ...), the
chorus sung two or three times. About 5 % of songs are instrumental (lang ``INTRUMENTAL``, an
empty lyrics file) and about 4 % are in Portuguese (lang ``pt``), whatever their genre.

Artists sing 3 to 8 songs of one main genre; about 30 % of songs list a second genre after it.
Every song has its own generator, seeded from ``seed``: the same seed gives the same collection,
and the healthy songs are the same with or without ``faults``.
"""

from __future__ import annotations

import io
import json
import math
import os
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from genre_fusion.files.owned_outputs import clear_outputs, foreign_entries, record_outputs

GENRES = (
    "rock",
    "metal",
    "pop",
    "electronic",
    "hip hop",
    "reggae",
    "jazz",
    "blues",
    "folk",
    "country",
    "soul",
    "punk",
)
MIN_GENRES, MAX_GENRES = 2, len(GENRES)
ARTIST_SONGS = (3, 8)  # songs per artist, inclusive
SECOND_GENRE_PROB = 0.3
INSTRUMENTAL_PROB = 0.05
OTHER_LANG_PROB = 0.04
INSTRUMENTAL = "INTRUMENTAL"  # misspelled exactly as in Music4All's id_lang.csv
OTHER_LANG = "pt"
ID_CHARS = string.ascii_letters + string.digits
ID_LEN, SPOTIFY_ID_LEN = 16, 22

FAULTS = (
    "corrupt_audio",
    "truncated_audio",
    "zero_byte_audio",
    "missing_audio",
    "silent_audio",
    "short_audio",
    "missing_lyrics",
    "invalid_utf8_lyrics",
    "no_genre",
    "duplicate_id",
)
TRUNCATED_BYTES = 300
CORRUPT_BYTES = 16_384
SHORT_SECONDS = 0.5
INVALID_UTF8 = b"\xff\xfe\xfa bad "  # 0xff never occurs in UTF-8

CSV_COLUMNS = {
    "id_information.csv": ("id", "artist", "song", "album_name"),
    "id_genres.csv": ("id", "genres"),
    "id_lang.csv": ("id", "lang"),
    "id_metadata.csv": (
        "id",
        "spotify_id",
        "popularity",
        "release",
        "danceability",
        "energy",
        "key",
        "mode",
        "valence",
        "tempo",
        "duration_ms",
    ),
    "id_tags.csv": ("id", "tags"),
}
FAULTS_CSV = "faults.csv"
SETTINGS_FILE = "synth.json"  # the settings of the collection in a folder, and whether it is complete
SONG_FOLDERS = ("audios", "lyrics")
DEMO_KIND = "demo collection"  # the folder's kind in its record of outputs (`genre_fusion.owned_outputs`)


@dataclass(frozen=True)
class SynthSummary:
    """What ``write_demo_collection`` wrote."""

    out_dir: Path
    songs: int  # rows written to id_information.csv (faulty songs included)
    genres: tuple[str, ...]
    faults: dict[str, str]  # song id -> fault name, empty without faults
    already_there: bool = False  # the folder held this very collection: nothing was written


def audio_group(genre: int) -> int:
    """Audio style index of genre index ``genre``."""
    return genre // 2


def lyric_group(genre: int, k: int) -> int:
    """Lyric topic index of genre index ``genre`` among ``k`` genres."""
    # With two genres the shifted pairing would put both in one topic as well as one style.
    return genre if k == 2 else ((genre + 1) % k) // 2


def _between(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """A uniform integer within the inclusive ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[rng.integers(len(words))]


def _random_id(rng: np.random.Generator, length: int) -> str:
    return "".join(ID_CHARS[i] for i in rng.integers(len(ID_CHARS), size=length))


# ----------------------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class _AudioStyle:
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


MINOR_PENTA, MAJOR_PENTA = (0, 3, 5, 7, 10), (0, 2, 4, 7, 9)
MAJOR, MINOR, DORIAN_BLUES = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 3, 5, 6, 7, 10)
SAW = tuple(1 / h for h in range(1, 11))
SQUARE = tuple(1 / h if h % 2 else 0.0 for h in range(1, 10))
AUDIO_STYLES = (
    _AudioStyle(
        "band",
        tempo=(110, 140),
        swing=0.0,
        kick="x.....x.x.......",
        snare="....x.......x...",
        hat="x.x.x.x.x.x.x.x.",
        hat_decay=0.05,
        bass="x.x.x.x.x.x.x.x.",
        bass_walk=False,
        bass_harmonics=SAW[:6],
        melody_step=2,
        rest_prob=0.15,
        scale=MINOR_PENTA,
        mode=0,
        melody_base=60,
        harmonics=SAW,
        attack=0.01,
        decay=0.6,
        drive=3.0,
        energy=0.8,
        danceability=0.5,
        valence=0.45,
    ),
    _AudioStyle(
        "synth",
        tempo=(118, 128),
        swing=0.0,
        kick="x...x...x...x...",
        snare="....x.......x...",
        hat="..x...x...x...x.",
        hat_decay=0.08,
        bass="x.xx..x.x.xx..x.",
        bass_walk=False,
        bass_harmonics=SQUARE[:5],
        melody_step=1,
        rest_prob=0.1,
        scale=MAJOR,
        mode=1,
        melody_base=60,
        harmonics=SQUARE,
        attack=0.002,
        decay=0.12,
        drive=0.0,
        energy=0.75,
        danceability=0.75,
        valence=0.65,
    ),
    _AudioStyle(
        "groove",
        tempo=(78, 95),
        swing=0.6,
        kick="x......x..x.....",
        snare="....x.......x...",
        hat="xoxoxoxoxoxoxoxo",
        hat_decay=0.03,
        bass="x......x..x.....",
        bass_walk=False,
        bass_harmonics=(1.0, 0.15),
        melody_step=4,
        rest_prob=0.25,
        scale=MINOR,
        mode=0,
        melody_base=48,
        harmonics=(1.0, 0.3, 0.1),
        attack=0.03,
        decay=0.8,
        drive=0.0,
        energy=0.6,
        danceability=0.8,
        valence=0.55,
    ),
    _AudioStyle(
        "swing",
        tempo=(100, 150),
        swing=0.67,
        kick="x.......x.......",
        snare="......o.......o.",
        hat="x...x.x.x...x.x.",
        hat_decay=0.25,
        bass="x...x...x...x...",
        bass_walk=True,
        bass_harmonics=(1.0, 0.5, 0.2),
        melody_step=2,
        rest_prob=0.3,
        scale=DORIAN_BLUES,
        mode=0,
        melody_base=60,
        harmonics=(1.0, 0.0, 1 / 9, 0.0, 1 / 25),
        attack=0.02,
        decay=0.4,
        drive=0.0,
        energy=0.4,
        danceability=0.55,
        valence=0.5,
    ),
    _AudioStyle(
        "acoustic",
        tempo=(86, 110),
        swing=0.0,
        kick="x.......x.......",
        snare="....o.......o...",
        hat="..o...o...o...o.",
        hat_decay=0.06,
        bass="x.......x.......",
        bass_walk=False,
        bass_harmonics=(1.0, 0.4, 0.2),
        melody_step=2,
        rest_prob=0.2,
        scale=MAJOR_PENTA,
        mode=1,
        melody_base=60,
        harmonics=tuple(0.8**h for h in range(12)),
        attack=0.001,
        decay=0.35,
        drive=0.0,
        energy=0.4,
        danceability=0.55,
        valence=0.6,
    ),
    _AudioStyle(
        "fast",
        tempo=(165, 195),
        swing=0.0,
        kick="x...x...x...x...",
        snare="..x...x...x...x.",
        hat="xxxxxxxxxxxxxxxx",
        hat_decay=0.02,
        bass="x.x.x.x.x.x.x.x.",
        bass_walk=False,
        bass_harmonics=SQUARE[:5],
        melody_step=4,
        rest_prob=0.1,
        scale=MAJOR,
        mode=1,
        melody_base=60,
        harmonics=SQUARE,
        attack=0.005,
        decay=1.0,
        drive=5.0,
        energy=0.9,
        danceability=0.45,
        valence=0.5,
    ),
)
PARTS = ("kick", "snare", "hat", "bass", "melody")
LEVELS = {"kick": 1.0, "snare": 0.6, "hat": 0.25, "bass": 0.5, "melody": 0.45}
LEVEL_JITTER = 0.2  # each part's level varies by +-20 % per song
BASS_BASE = 36  # MIDI C below the bass's lowest tonic
BASS_ATTACK, BASS_DECAY = 0.005, 0.5  # s
TIMING_JITTER_S = 0.004
RELEASE_S = 0.01  # fade before the next note, so notes never click
PEAK = (0.5, 0.9)
NOISE_STD = 0.003
STEPS_PER_BAR = 16
BARS_PER_CHORD = 1
CHORDS_PER_LOOP = 4


def _midi_hz(note: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _voice(
    onsets: np.ndarray,
    hz: np.ndarray,
    amps: np.ndarray,
    harmonics: tuple[float, ...],
    attack: float,
    decay: float,
    n: int,
    sr: int,
) -> np.ndarray:
    """A monophonic line: note i starts at sample ``onsets[i]`` (sorted), lasts to the next one."""
    t = np.arange(n)
    idx = np.maximum(np.searchsorted(onsets, t, side="right") - 1, 0)
    # float32 from here on: twice as fast as float64 and far finer than the MP3 it ends in
    age = np.maximum((t - onsets[idx]) / sr, 0).astype(np.float32)
    left = ((np.append(onsets, n)[idx + 1] - t) / sr).astype(np.float32)
    env = amps.astype(np.float32)[idx] * np.clip(left / RELEASE_S, 0, 1) * (t >= onsets[0])
    env *= (1 - np.exp(age * np.float32(-1 / attack))) * np.exp(age * np.float32(-1 / decay))
    cycles = np.cumsum(hz[idx]) / sr  # cumulative, so that a change of frequency keeps the phase
    phase = (cycles - np.floor(cycles)).astype(np.float32) * np.float32(2 * np.pi)
    # sin(h x) by the Chebyshev recurrence, much cheaper than one np.sin per harmonic; harmonics
    # at or above Nyquist are dropped per note, so nothing aliases.
    partials = (sr / 2 / hz[idx]).astype(np.float32)
    two_cos, lower, sin_h = 2 * np.cos(phase), np.zeros(n, np.float32), np.sin(phase)
    wave = np.zeros(n, np.float32)
    for h, a in enumerate(harmonics, 1):
        if a:
            wave += np.float32(a) * sin_h * (h < partials)
        lower, sin_h = sin_h, two_cos * sin_h - lower
    return env * wave


def _drum_hits(rng: np.random.Generator, sr: int, style: _AudioStyle) -> dict[str, np.ndarray]:
    """One-shot kick, snare and hi-hat samples, each peaking at 1."""
    t = np.arange(int(0.4 * sr)) / sr
    sweep = 45 + 110 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.12, 0.25))
    noise = rng.standard_normal(t.size)
    snare = np.diff(noise, prepend=0.0) * np.exp(-t / rng.uniform(0.08, 0.15))
    snare += 2.0 * np.sin(2 * np.pi * rng.uniform(170, 210) * t) * np.exp(-t / 0.05)
    hat = np.diff(noise, n=2, prepend=(0.0, 0.0)) * np.exp(-t / style.hat_decay)
    return {name: x / np.abs(x).max() for name, x in (("kick", kick), ("snare", snare), ("hat", hat))}


def _pattern(pattern: str, steps: int) -> np.ndarray:
    """Velocities of a 16-step pattern repeated over ``steps`` steps."""
    bar = np.array([{"x": 1.0, "o": 0.5}.get(c, 0.0) for c in pattern])
    return np.resize(bar, steps)


def _synth_audio(
    style: _AudioStyle, rng: np.random.Generator, seconds: float, sr: int
) -> tuple[np.ndarray, float, int]:
    """Renders one clip of ``style``: (float32 mono samples, tempo in bpm, key as pitch class)."""
    n = round(seconds * sr)
    tempo = float(rng.uniform(*style.tempo))
    key = int(rng.integers(12))
    step_s = 60 / tempo / 4
    steps = math.ceil(seconds / step_s) + 1
    k = np.arange(steps)
    times = (k + style.swing * (k % 4 == 2)) * step_s + rng.normal(0, TIMING_JITTER_S, steps)
    onsets = np.clip(np.round(times * sr).astype(int), 0, n)
    onsets[0] = 0
    jitter = rng.uniform(1 - LEVEL_JITTER, 1 + LEVEL_JITTER, len(PARTS))
    level = {part: LEVELS[part] * j for part, j in zip(PARTS, jitter, strict=True)}
    mix = np.zeros(n, np.float32)

    hits = _drum_hits(rng, sr, style)
    for name, pattern in (("kick", style.kick), ("snare", style.snare), ("hat", style.hat)):
        hit = hits[name] * level[name]
        for onset, velocity in zip(onsets, _pattern(pattern, steps), strict=True):
            if velocity and onset < n:
                part = mix[onset : onset + hit.size]
                part += velocity * hit[: part.size]

    scale = np.array(style.scale)
    chords = np.concatenate([[0], rng.integers(len(scale), size=CHORDS_PER_LOOP - 1)])
    chord_of_step = chords[(k // (STEPS_PER_BAR * BARS_PER_CHORD)) % CHORDS_PER_LOOP]
    bass_velocity = _pattern(style.bass, steps)
    bass_on = np.flatnonzero(bass_velocity)
    bass_deg = chord_of_step[bass_on]
    if style.bass_walk:
        bass_deg = bass_deg + rng.integers(-1, 2, size=bass_deg.size)
    bass_note = BASS_BASE + key + 12 * (bass_deg // len(scale)) + scale[bass_deg % len(scale)]
    mix += level["bass"] * _voice(
        onsets[bass_on],
        _midi_hz(bass_note),
        bass_velocity[bass_on],
        style.bass_harmonics,
        BASS_ATTACK,
        BASS_DECAY,
        n,
        sr,
    )

    mel_on = k[:: style.melody_step]
    span = 2 * len(scale)  # two octaves of scale degrees
    walk = np.cumsum(rng.integers(-2, 3, size=mel_on.size)) + len(scale)
    deg = np.abs((walk % (2 * span)) - span)  # reflect the walk into [0, span]
    mel_note = style.melody_base + key + 12 * (deg // len(scale)) + scale[deg % len(scale)]
    mel_amp = (rng.random(mel_on.size) >= style.rest_prob) * rng.uniform(0.7, 1.0, mel_on.size)
    melody = _voice(
        onsets[mel_on], _midi_hz(mel_note), mel_amp, style.harmonics, style.attack, style.decay, n, sr
    )
    if style.drive:
        melody = np.tanh(style.drive * melody) / np.tanh(style.drive)
    mix += level["melody"] * melody

    mix *= rng.uniform(*PEAK) / np.abs(mix).max()
    mix += rng.normal(0, NOISE_STD, n)
    return mix.astype(np.float32), tempo, key


# ---------------------------------------------------------------------------------------- lyrics

LYRIC_TOPICS = (  # per topic and language: the words that carry the topic
    {
        "en": (
            "love",
            "heart",
            "baby",
            "kiss",
            "forever",
            "darling",
            "arms",
            "hold",
            "sweet",
            "tender",
            "promise",
            "lips",
            "touch",
            "yours",
            "honey",
        ),
        "pt": ("amor", "coração", "beijo", "saudade", "paixão", "carinho", "querida", "abraço"),
    },
    {
        "en": (
            "street",
            "money",
            "hustle",
            "block",
            "cash",
            "grind",
            "crew",
            "corner",
            "paper",
            "boss",
            "chain",
            "respect",
            "game",
            "city",
            "flow",
        ),
        "pt": ("rua", "dinheiro", "corre", "quebrada", "grana", "favela", "respeito", "parceiro"),
    },
    {
        "en": (
            "night",
            "dance",
            "lights",
            "floor",
            "party",
            "neon",
            "move",
            "beat",
            "club",
            "glow",
            "rhythm",
            "shine",
            "electric",
            "tonight",
            "bass",
        ),
        "pt": ("noite", "dança", "luzes", "festa", "balada", "ritmo", "batida", "pista"),
    },
    {
        "en": (
            "road",
            "whiskey",
            "truck",
            "highway",
            "dust",
            "town",
            "river",
            "boots",
            "porch",
            "radio",
            "mama",
            "field",
            "county",
            "dirt",
            "wheel",
        ),
        "pt": ("estrada", "cachaça", "caminhão", "poeira", "sertão", "rio", "viola", "fazenda"),
    },
    {
        "en": (
            "fire",
            "darkness",
            "steel",
            "blood",
            "storm",
            "thunder",
            "chains",
            "iron",
            "rage",
            "grave",
            "burn",
            "shadow",
            "war",
            "scream",
            "doom",
        ),
        "pt": ("fogo", "escuridão", "aço", "sangue", "tempestade", "trovão", "guerra", "sombra"),
    },
    {
        "en": (
            "sea",
            "sun",
            "island",
            "waves",
            "sand",
            "breeze",
            "ocean",
            "summer",
            "shore",
            "palm",
            "tide",
            "sail",
            "blue",
            "warm",
            "horizon",
        ),
        "pt": ("mar", "sol", "ilha", "ondas", "areia", "brisa", "praia", "verão"),
    },
)
FILLERS = {  # shared by every topic
    "en": (
        "time",
        "way",
        "life",
        "world",
        "day",
        "dream",
        "mind",
        "eyes",
        "soul",
        "feel",
        "know",
        "want",
        "never",
        "again",
        "away",
        "alone",
        "free",
        "down",
        "still",
        "run",
        "fall",
        "stay",
        "try",
        "see",
        "remember",
        "tell",
    ),
    "pt": (
        "tempo",
        "vida",
        "mundo",
        "dia",
        "sonho",
        "olhos",
        "alma",
        "sentir",
        "saber",
        "quero",
        "nunca",
        "sempre",
        "longe",
        "sozinho",
        "livre",
    ),
}
STOP_WORDS = {
    "en": (
        "I",
        "you",
        "we",
        "me",
        "my",
        "your",
        "the",
        "a",
        "and",
        "to",
        "in",
        "on",
        "it",
        "is",
        "of",
        "for",
        "that",
        "this",
        "with",
        "be",
        "all",
        "so",
        "just",
        "but",
        "when",
        "like",
        "don't",
        "can't",
        "I'm",
    ),
    "pt": (
        "eu",
        "você",
        "nós",
        "me",
        "meu",
        "teu",
        "o",
        "a",
        "e",
        "de",
        "em",
        "no",
        "na",
        "que",
        "com",
        "pra",
        "um",
        "uma",
        "não",
        "é",
        "tão",
        "só",
        "quando",
        "como",
    ),
}
ADLIBS = {"en": ("Oh", "Yeah", "Hey", "Ooh"), "pt": ("Ô", "Ai", "Ei")}
WORD_KINDS = (0.45, 0.3, 0.25)  # probability of a stop word, a filler word and a topic word
LINE_WORDS = (4, 9)  # words per line, inclusive
ENDINGS = ("", "", ",", ".", "!", "?", "...")
ADLIB_PROB = 0.1
SHOUT_PROB = 0.1  # chorus lines sometimes in capitals
VERSE_LINES, CHORUS_LINES, BRIDGE_LINES = 4, 4, 2
BRIDGE_PROB = 0.5


def _line(rng: np.random.Generator, topic: int, lang: str) -> str:
    pools = (STOP_WORDS[lang], FILLERS[lang], LYRIC_TOPICS[topic][lang])
    kinds = rng.choice(len(pools), size=_between(rng, LINE_WORDS), p=WORD_KINDS)
    words = [pools[kind][rng.integers(len(pools[kind]))] for kind in kinds]
    if rng.random() < ADLIB_PROB:
        words.insert(0, ADLIBS[lang][rng.integers(len(ADLIBS[lang]))] + ",")
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words) + ENDINGS[rng.integers(len(ENDINGS))]


def _synth_lyrics(topic: int, lang: str, rng: np.random.Generator) -> str:
    """Lyrics of lyric topic ``topic`` in ``lang`` (en or pt): verses and a chorus sung 2-3 times."""
    chorus = [_line(rng, topic, lang) for _ in range(CHORUS_LINES)]
    chorus = [line.upper() if rng.random() < SHOUT_PROB else line for line in chorus]
    chorus[2] = chorus[0]  # a hook: the first line comes back
    sections = [
        ("Verse 1", [_line(rng, topic, lang) for _ in range(VERSE_LINES)]),
        ("Chorus", chorus),
        ("Verse 2", [_line(rng, topic, lang) for _ in range(VERSE_LINES)]),
        ("Chorus", chorus),
    ]
    if rng.random() < BRIDGE_PROB:
        sections += [("Bridge", [_line(rng, topic, lang) for _ in range(BRIDGE_LINES)]), ("Chorus", chorus)]
    return "\n\n".join(f"[{name}]\n" + "\n".join(lines) for name, lines in sections) + "\n"


# --------------------------------------------------------------------------------------- catalog

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Carla",
    "Dave",
    "Elena",
    "Frank",
    "Grace",
    "Hugo",
    "Iris",
    "Jack",
    "Kim",
    "Leo",
    "Maya",
    "Nick",
    "Olga",
    "Paul",
    "Rosa",
    "Sam",
    "Tina",
    "Victor",
)
LAST_NAMES = (
    "Stone",
    "Rivers",
    "Moreau",
    "Black",
    "Silva",
    "Novak",
    "Hart",
    "Quinn",
    "Reyes",
    "Walsh",
    "Young",
    "Berg",
)
BAND_PROB = 0.5
NAME_TRIES = 10
NAME_ADJECTIVES = (
    "Silver",
    "Electric",
    "Broken",
    "Velvet",
    "Midnight",
    "Golden",
    "Wild",
    "Crystal",
    "Hollow",
    "Neon",
    "Paper",
    "Crimson",
    "Quiet",
    "Northern",
)
NAME_NOUNS = (
    "Wolves",
    "Echoes",
    "Machines",
    "Ghosts",
    "Horses",
    "Satellites",
    "Lions",
    "Ravens",
    "Mirrors",
    "Signals",
    "Owls",
    "Rivers",
    "Gardens",
    "Engines",
)
TITLE_NOUNS = (
    "Heart",
    "Mirror",
    "River",
    "Signal",
    "Garden",
    "Engine",
    "Letter",
    "Window",
    "Summer",
    "Fever",
    "Stranger",
    "Parade",
    "Harbor",
    "Lullaby",
    "Morning",
    "Wolf",
)
ALBUMS_PER_ARTIST = (1, 2)  # inclusive
TAG_WORDS = (
    "seen live",
    "favorites",
    "male vocalists",
    "female vocalists",
    "80s",
    "90s",
    "00s",
    "indie",
    "alternative",
    "chill",
    "awesome",
    "british",
    "american",
    "catchy",
)
EXTRA_TAGS = (1, 3)  # tag words beside the genres, inclusive
RELEASE_YEARS = (1965, 2019)  # inclusive
TRACK_MS = (150_000, 330_000)  # Spotify's duration_ms is the full track's, not the 30 s clip's
FEATURE_STD = 0.08  # spread of energy, danceability and valence around the style's mean


@dataclass(frozen=True)
class _Song:
    id: str
    artist: str
    title: str
    album: str
    genre: int  # index into the collection's genres: the main genre
    genres: str  # id_genres.csv's field
    lang: str
    tags: str
    seed: int  # of the song's own generator, so a song's content is independent of the others
    fault: str = ""


def _artist_sizes(songs: int, rng: np.random.Generator) -> list[int]:
    """Splits ``songs`` into artists of ARTIST_SONGS songs each (fewer only if songs is smaller)."""
    low, high = ARTIST_SONGS
    sizes = []
    while songs > high:
        size = min(_between(rng, ARTIST_SONGS), songs - low)  # leave enough for one more artist
        sizes.append(size)
        songs -= size
    return [*sizes, songs]


class _Catalog:
    """Draws names, ids and labels from one generator, never repeating an artist name or an id."""

    def __init__(self, rng: np.random.Generator, genres: tuple[str, ...]):
        self.rng, self.genres = rng, genres
        self.ids: set[str] = set()
        self.artists: set[str] = set()

    def new_id(self) -> str:
        while (song_id := _random_id(self.rng, ID_LEN)) in self.ids:
            pass
        self.ids.add(song_id)
        return song_id

    def new_artist(self) -> str:
        rng = self.rng
        for _ in range(NAME_TRIES):
            if rng.random() < BAND_PROB:
                name = f"The {_pick(rng, NAME_ADJECTIVES)} {_pick(rng, NAME_NOUNS)}"
            else:
                name = f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"
            if name not in self.artists:
                break
        else:  # the name pools run out in large collections: number the repeats
            name = f"{name} {len(self.artists)}"
        self.artists.add(name)
        return name

    def title(self) -> str:
        return f"{_pick(self.rng, NAME_ADJECTIVES)} {_pick(self.rng, TITLE_NOUNS)}"

    def song(
        self, artist: str, album: str, genre: int, lang: str | None = None, song_id: str = "", fault: str = ""
    ) -> _Song:
        """A song of ``artist``'s main ``genre``, sometimes with a second one; lang drawn unless given."""
        rng = self.rng
        labels = [self.genres[genre]]
        if rng.random() < SECOND_GENRE_PROB:
            labels.append(self.genres[(genre + rng.integers(1, len(self.genres))) % len(self.genres)])
        if lang is None:
            draw = rng.random()
            lang = (
                INSTRUMENTAL
                if draw < INSTRUMENTAL_PROB
                else OTHER_LANG
                if draw < INSTRUMENTAL_PROB + OTHER_LANG_PROB
                else "en"
            )
        words = rng.choice(len(TAG_WORDS), size=_between(rng, EXTRA_TAGS), replace=False)
        tags = [*labels, *(TAG_WORDS[w] for w in words)] + (["instrumental"] if lang == INSTRUMENTAL else [])
        return _Song(
            id=song_id or self.new_id(),
            artist=artist,
            title=self.title(),
            album=album,
            genre=genre,
            genres=",".join(labels),
            lang=lang,
            tags=",".join(tags),
            seed=int(rng.integers(2**63)),
            fault=fault,
        )


def _plan(catalog: _Catalog, songs: int) -> list[_Song]:
    """The healthy songs: genres as balanced as ``songs`` allows, each artist within one genre."""
    rng, k = catalog.rng, len(catalog.genres)
    planned = []
    for genre in range(k):
        for size in _artist_sizes(songs // k + (genre < songs % k), rng):
            artist = catalog.new_artist()
            albums = tuple(catalog.title() for _ in range(_between(rng, ALBUMS_PER_ARTIST)))
            planned += [catalog.song(artist, _pick(rng, albums), genre) for _ in range(size)]
    return planned


def _plan_faults(catalog: _Catalog, healthy: list[_Song]) -> list[_Song]:
    """One broken song per fault, by an existing artist of the collection, in English."""
    rng = catalog.rng
    broken = []
    for fault in FAULTS:
        if fault == "duplicate_id":  # another artist's song under an id already taken
            victim = healthy[rng.integers(len(healthy))]
            others = [song for song in healthy if song.genre != victim.genre]
            donor = others[rng.integers(len(others))]
            broken.append(catalog.song(donor.artist, donor.album, donor.genre, "en", victim.id, fault))
        else:
            donor = healthy[rng.integers(len(healthy))]
            song = catalog.song(donor.artist, donor.album, donor.genre, "en", fault=fault)
            if fault == "no_genre":  # an empty genres field; the tags (genres first) lose them too
                genre_tags = song.genres.count(",") + 1
                song = replace(song, genres="", tags=",".join(song.tags.split(",")[genre_tags:]))
            broken.append(song)
    return broken


# ---------------------------------------------------------------------------------------- writer

MIN_SECONDS = 1.0  # so that healthy clips stay distinguishable from short and truncated ones
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what LAME encodes
WORKERS = min(8, os.cpu_count() or 1)  # numpy and libsndfile release the GIL: threads scale


def _audio_bytes(audio: np.ndarray, sr: int, fault: str, rng: np.random.Generator) -> bytes:
    """The .mp3 file's content for a song with ``fault`` ("" when healthy)."""
    if fault == "zero_byte_audio":
        return b""
    if fault == "corrupt_audio":  # without 0xff there is no MPEG frame sync a decoder could lock onto
        return rng.integers(0, 0xFF, CORRUPT_BYTES, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros_like(audio) if fault == "silent_audio" else audio, sr, format="MP3")
    return buffer.getvalue()[:TRUNCATED_BYTES] if fault == "truncated_audio" else buffer.getvalue()


def _song_files(song: _Song) -> tuple[str, ...]:
    """The files ``song`` has on disk, relative to the collection: a missing_* fault leaves its file
    out, and the files of a duplicated id belong to the first song."""
    if song.fault == "duplicate_id":
        return ()
    audio = () if song.fault == "missing_audio" else (f"audios/{song.id}.mp3",)
    lyrics = () if song.fault == "missing_lyrics" else (f"lyrics/{song.id}.txt",)
    return audio + lyrics


def _write_song(song: _Song, out_dir: Path, k: int, seconds: float, sr: int) -> dict[str, object]:
    """Writes ``song``'s audio and lyrics files as its fault wants; returns its id_metadata row."""
    rng = np.random.default_rng(song.seed)
    style = AUDIO_STYLES[audio_group(song.genre)]
    clip_seconds = SHORT_SECONDS if song.fault == "short_audio" else seconds
    audio, tempo, key = _synth_audio(style, rng, clip_seconds, sr)
    lyrics = "" if song.lang == INSTRUMENTAL else _synth_lyrics(lyric_group(song.genre, k), song.lang, rng)
    for path in _song_files(song):  # audio first: its bytes draw from rng before the metadata does
        if path.startswith("audios/"):
            (out_dir / path).write_bytes(_audio_bytes(audio, sr, song.fault, rng))
        else:
            prefix = INVALID_UTF8 if song.fault == "invalid_utf8_lyrics" else b""
            (out_dir / path).write_bytes(prefix + lyrics.encode("utf-8"))

    def feature(mean: float) -> float:
        return round(float(np.clip(rng.normal(mean, FEATURE_STD), 0, 1)), 3)

    return {
        "id": song.id,
        "spotify_id": _random_id(rng, SPOTIFY_ID_LEN),
        "popularity": int(rng.integers(0, 101)),
        "release": _between(rng, RELEASE_YEARS),
        "danceability": feature(style.danceability),
        "energy": feature(style.energy),
        "key": key,
        "mode": style.mode,
        "valence": feature(style.valence),
        "tempo": round(tempo, 3),
        "duration_ms": int(rng.integers(*TRACK_MS)),
    }


def _write_csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...]) -> None:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False)


def _write_settings(out_dir: Path, settings: dict, complete: bool) -> None:
    record = {"settings": settings, "complete": complete}
    (out_dir / SETTINGS_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")


def _claim_folder(out_dir: Path, settings: dict, files: list[str], overwrite: bool) -> bool:
    """Check ``out_dir`` before anything is written or deleted there; True when it already holds the
    complete collection of ``settings`` (every one of its ``files`` included).

    Raises ValueError for a file, for a folder holding anything synth's record of its outputs does
    not list, and for a collection of other settings unless ``overwrite``, which then deletes the
    recorded outputs (`genre_fusion.owned_outputs`: the rule every --overwrite follows).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file: expected a folder")
    foreign = foreign_entries(out_dir, DEMO_KIND)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(
            f"--out {out_dir} holds {listed}, which data_prep synth did not write: nothing was changed; "
            "choose a new or empty folder"
        )
    try:
        record = json.loads((out_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        previous = dict(record["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        # An empty folder, or a synth that died before its settings were written: nothing to keep.
        clear_outputs(out_dir, DEMO_KIND)
        return False
    if previous == settings:  # complete, or unfinished and written over in place
        return bool(record.get("complete")) and all((out_dir / name).is_file() for name in files)
    if not overwrite:
        changes = "; ".join(
            f"--{key.replace('_', '-')} {previous.get(key)} -> {value}"
            for key, value in settings.items()
            if previous.get(key) != value
        )
        raise ValueError(
            f"--out {out_dir} holds a demo collection of other settings ({changes}): add --overwrite to "
            "replace it (only what synth wrote there is deleted)"
        )
    clear_outputs(out_dir, DEMO_KIND)
    return False


def write_demo_collection(
    out_dir: Path,
    songs: int = 240,
    genres: int = 6,
    seconds: float = 10.0,
    seed: int = 0,
    faults: bool = False,
    sample_rate: int = 22050,
    progress: bool = True,
    overwrite: bool = False,
) -> SynthSummary:
    """Writes a demo collection of ``songs`` songs of the first ``genres`` of GENRES into ``out_dir``.

    Clips are ``seconds`` long mono MP3s at ``sample_rate``. With ``faults`` one broken song per
    fault of FAULTS is added and listed in faults.csv. The same seed gives the same CSVs and lyrics
    byte for byte and the same audio samples; the healthy songs do not depend on ``faults``.
    A folder that already holds the complete collection of these settings is left as it is
    (``already_there``); one of other settings is replaced only with ``overwrite``.
    Raises ValueError for genres outside 2..12, songs < 2 * genres, seconds < 1, a sample rate
    MP3 cannot hold, a folder holding anything synth did not write, or a collection of other
    settings without ``overwrite``.
    """
    if not MIN_GENRES <= genres <= MAX_GENRES:
        raise ValueError(
            f"--genres must be between {MIN_GENRES} and {MAX_GENRES} (there are "
            f"{MAX_GENRES} genre names: {', '.join(GENRES)}), got {genres}"
        )
    if songs < 2 * genres:
        raise ValueError(
            f"--songs must be at least 2 per genre, {2 * genres} for {genres} genres, got {songs}"
        )
    if not (math.isfinite(seconds) and seconds >= MIN_SECONDS):
        raise ValueError(f"--seconds must be at least {MIN_SECONDS}, got {seconds}")
    if sample_rate not in MP3_RATES:
        raise ValueError(
            f"sample_rate must be one MP3 supports ({', '.join(map(str, MP3_RATES))}), got {sample_rate}"
        )
    out_dir = Path(out_dir)
    catalog = _Catalog(np.random.default_rng(seed), GENRES[:genres])
    healthy = _plan(catalog, songs)
    all_songs = healthy + (_plan_faults(catalog, healthy) if faults else [])
    broken = {s.id: s.fault for s in all_songs if s.fault}
    summary = SynthSummary(out_dir=out_dir, songs=len(all_songs), genres=GENRES[:genres], faults=broken)
    settings = {
        "songs": songs,
        "genres": genres,
        "seconds": seconds,
        "seed": seed,
        "faults": faults,
        "sample_rate": sample_rate,
    }
    tables = [*CSV_COLUMNS, *([FAULTS_CSV] if faults else [])]
    files = [*tables, *(name for song in all_songs for name in _song_files(song))]
    if _claim_folder(out_dir, settings, files, overwrite):
        return replace(summary, already_there=True)

    # Recorded first, so that what an interrupted run leaves is still known to be synth's.
    record_outputs(out_dir, DEMO_KIND, [*tables, *SONG_FOLDERS, SETTINGS_FILE])
    for folder in SONG_FOLDERS:
        (out_dir / folder).mkdir(exist_ok=True)
    _write_settings(out_dir, settings, complete=False)

    write = partial(_write_song, out_dir=out_dir, k=genres, seconds=seconds, sr=sample_rate)
    with ThreadPoolExecutor(WORKERS) as pool:
        metadata = list(
            tqdm(
                pool.map(write, all_songs),
                total=len(all_songs),
                desc="synth songs",
                unit="song",
                disable=not progress,
            )
        )

    # a stable sort by id, as in Music4All: a duplicated id's second row follows its first
    order = sorted(range(len(all_songs)), key=lambda i: all_songs[i].id)
    table = {
        "id_information.csv": [
            {"id": s.id, "artist": s.artist, "song": s.title, "album_name": s.album} for s in all_songs
        ],
        "id_genres.csv": [{"id": s.id, "genres": s.genres} for s in all_songs],
        "id_lang.csv": [{"id": s.id, "lang": s.lang} for s in all_songs],
        "id_metadata.csv": metadata,
        "id_tags.csv": [{"id": s.id, "tags": s.tags} for s in all_songs],
    }
    for name, rows in table.items():
        _write_csv(out_dir / name, [rows[i] for i in order], CSV_COLUMNS[name])
    if faults:
        _write_csv(out_dir / FAULTS_CSV, [{"id": i, "fault": f} for i, f in broken.items()], ("id", "fault"))
    _write_settings(out_dir, settings, complete=True)
    return summary
