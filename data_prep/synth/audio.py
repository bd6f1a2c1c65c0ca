"""One clip of an audio style, rendered with numpy: drums, a bass line and a melody.

``synth_audio`` draws the clip's tempo, key, notes and mix within the style from the generator
it is given; the package docstring describes the sound.
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.synth.styles import AudioStyle

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
    """MIDI note numbers -> frequencies in Hz (A4 = 69 = 440 Hz)."""
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


def _drum_hits(rng: np.random.Generator, sr: int, style: AudioStyle) -> dict[str, np.ndarray]:
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


def synth_audio(
    style: AudioStyle, rng: np.random.Generator, seconds: float, sr: int
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
