"""Why a model predicted a genre for one song: occlusion of its modalities, lyric words and time windows.

Model-agnostic: everything goes through a `PredictFn` (waveforms float32 [n, samples], lyrics [n]
-> probabilities float32 [n, genres]), the ``serving_default`` signature of an export or any
stand-in, so it explains every fusion, encoder and single-modality model alike. For the predicted
(most probable) genre it measures how much its probability drops when a part of the input is
hidden:

- modalities: the lyrics hidden (``""``, what the export reads as no lyrics) or the audio hidden
  (all zeros, silence);
- lyric words: each distinct principal word (`genre_fusion.features.principal_words`, the
  reduction the model reads) deleted everywhere in the raw lyrics;
- time windows: each window of the waveform set to zero.

A positive drop means the hidden part supports the prediction, a negative one that it opposes it.
Variants go through the model `batch_size` at a time.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from genre_fusion.features.principal_words import APOSTROPHES, principal_words

# waveforms float32 [n, samples], lyrics [n] -> probabilities [n, genres].
PredictFn = Callable[[np.ndarray, list[str]], np.ndarray]

DEFAULT_BATCH_SIZE = 32
# Drops this small are float noise (batch composition changes the last bits), not an effect.
NO_EFFECT = 1e-6
# A run of letters, digits and apostrophes: what the principal-word reduction makes one word of
# (apostrophes removed, everything else -- hyphens, underscores, punctuation -- splits words).
_WORD_RUN = re.compile(rf"(?:[^\W_]|{APOSTROPHES})+")

METHOD = {
    "kind": "occlusion: a part of the input hidden at a time, the model rerun on each variant",
    "target": "the probability of the predicted (most probable) genre",
    "drop": "probability with both modalities - probability occluded; positive: the part supports it",
    "lyrics_hidden": 'lyrics replaced by "" (no lyrics)',
    "audio_hidden": "waveform replaced by zeros (silence)",
    "share": "share_audio = max(drop_audio, 0) / (max(drop_audio, 0) + max(drop_lyrics, 0)); "
    f"0.5 each when neither drop exceeds {NO_EFFECT:g}",
    "words": "each distinct principal word (the model's own reduction of the lyrics) deleted at "
    "every whole-word occurrence in the raw lyrics, case-insensitively",
    "windows": "each window of the clip set to zeros, the rest of the waveform and the lyrics kept",
}


@dataclass(frozen=True)
class ModalityEffect:
    """The predicted genre's probability with both modalities, with the lyrics hidden (None for a
    song without lyrics) and with the audio hidden."""

    with_both: float
    without_lyrics: float | None
    without_audio: float

    @property
    def drop_audio(self) -> float:
        return self.with_both - self.without_audio

    @property
    def drop_lyrics(self) -> float | None:
        return None if self.without_lyrics is None else self.with_both - self.without_lyrics

    @property
    def neither_drops(self) -> bool:
        """No modality's removal lowers the probability: the shares are then 0.5 each."""
        return self.drop_lyrics is not None and max(self.drop_audio, self.drop_lyrics) <= NO_EFFECT

    @property
    def shares(self) -> tuple[float, float] | None:
        """(audio, lyrics): how much each modality drove the prediction, summing to 1; None
        without lyrics."""
        if self.drop_lyrics is None:
            return None
        if self.neither_drops:
            return 0.5, 0.5
        audio, lyrics = max(self.drop_audio, 0.0), max(self.drop_lyrics, 0.0)
        return audio / (audio + lyrics), lyrics / (audio + lyrics)


@dataclass(frozen=True)
class WordEffect:
    """A lyric word, its whole-word `occurrences` in the raw lyrics, and the predicted genre's
    probability with all of them deleted."""

    word: str
    occurrences: int
    probability: float
    drop: float


@dataclass(frozen=True)
class WindowEffect:
    """A time window [start_seconds, end_seconds) and the predicted genre's probability with the
    waveform silenced there."""

    start_seconds: float
    end_seconds: float
    probability: float
    drop: float


@dataclass(frozen=True)
class Explanation:
    """One song's prediction and its occlusions: `probabilities` [genres] with both modalities,
    `words` in the order they first appear in the lyrics, `windows` in time order."""

    genres: tuple[str, ...]
    probabilities: tuple[float, ...]
    predicted: int
    modalities: ModalityEffect
    words: tuple[WordEffect, ...]
    windows: tuple[WindowEffect, ...]

    @property
    def predicted_genre(self) -> str:
        return self.genres[self.predicted]

    def supporting_words(self, count: int) -> list[WordEffect]:
        """Up to `count` words whose deletion lowers the probability most, largest drop first."""
        ranked = sorted(self.words, key=lambda effect: -effect.drop)
        return [effect for effect in ranked if effect.drop > NO_EFFECT][:count]

    def opposing_words(self, count: int) -> list[WordEffect]:
        """Up to `count` words whose deletion raises the probability most, largest rise first."""
        ranked = sorted(self.words, key=lambda effect: effect.drop)
        return [effect for effect in ranked if effect.drop < -NO_EFFECT][:count]

    def top_windows(self, count: int) -> list[WindowEffect]:
        """Up to `count` windows whose silencing lowers the probability most, largest drop first."""
        ranked = sorted(self.windows, key=lambda effect: -effect.drop)
        return [effect for effect in ranked if effect.drop > NO_EFFECT][:count]

    def to_dict(self, top_words: int, top_windows: int) -> dict:
        """Every number, JSON-ready; the supporting and opposing words and top windows by rank."""
        modalities = self.modalities
        shares = modalities.shares
        return {
            "genres": list(self.genres),
            "probabilities": list(self.probabilities),
            "predicted_genre": self.predicted_genre,
            "predicted_probability": self.probabilities[self.predicted],
            "modalities": {
                "lyrics_given": modalities.without_lyrics is not None,
                "probability_with_both": modalities.with_both,
                "probability_without_lyrics": modalities.without_lyrics,
                "probability_without_audio": modalities.without_audio,
                "drop_audio": modalities.drop_audio,
                "drop_lyrics": modalities.drop_lyrics,
                "share_audio": None if shares is None else shares[0],
                "share_lyrics": None if shares is None else shares[1],
                "shares_even_because_neither_drops": modalities.neither_drops,
            },
            "words": [asdict(effect) for effect in sorted(self.words, key=lambda effect: -effect.drop)],
            "supporting_words": [effect.word for effect in self.supporting_words(top_words)],
            "opposing_words": [effect.word for effect in self.opposing_words(top_words)],
            "windows": [asdict(effect) for effect in self.windows],
            "top_windows": [
                [effect.start_seconds, effect.end_seconds] for effect in self.top_windows(top_windows)
            ],
            "method": METHOD,
        }


def lyric_words(lyrics: str, max_tokens: int) -> list[str]:
    """The distinct principal words of `lyrics` (at most `max_tokens` read, as the model does), in
    the order they first appear."""
    return list(dict.fromkeys(principal_words([lyrics], max_tokens)[0].split()))


def _normalized(run: str) -> str:
    """A word run as the principal-word reduction spells it: no apostrophes, lower case."""
    return re.sub(APOSTROPHES, "", run).lower()


def count_word(lyrics: str, word: str) -> int:
    """Whole-word, case-insensitive occurrences of principal word `word` in raw `lyrics`."""
    return sum(_normalized(run.group()) == word for run in _WORD_RUN.finditer(lyrics))


def without_word(lyrics: str, word: str) -> str:
    """`lyrics` with every whole-word, case-insensitive occurrence of principal word `word`
    deleted ("Don't" counts as "dont"; "fires" and "firearm" are other words than "fire")."""
    return _WORD_RUN.sub(lambda run: "" if _normalized(run.group()) == word else run.group(), lyrics)


def time_windows(samples: int, sample_rate: int, window_seconds: float) -> list[tuple[int, int]]:
    """[start, end) sample ranges of `window_seconds` covering a clip of `samples`, the last one
    shorter when the window does not divide the clip. `ValueError` for a window that is not
    positive or longer than the clip."""
    if not math.isfinite(window_seconds) or round(window_seconds * sample_rate) < 1:
        raise ValueError(f"a window lasts at least one sample (1/{sample_rate} s), not {window_seconds} s")
    window = round(window_seconds * sample_rate)
    if window > samples:
        clip_seconds = samples / sample_rate
        raise ValueError(f"a window of {window_seconds:g} s is longer than the clip ({clip_seconds:g} s)")
    return [(start, min(start + window, samples)) for start in range(0, samples, window)]


def genre_probabilities(
    predict_fn: PredictFn, variants: Iterable[tuple[np.ndarray, str]], genre: int, batch_size: int
) -> np.ndarray:
    """(waveform float32 [samples], lyrics) variants -> the probability of `genre` for each,
    float64 [variants]; `batch_size` variants per call of `predict_fn`, built lazily to bound memory."""
    variants = iter(variants)
    probabilities = []
    while batch := list(itertools.islice(variants, batch_size)):
        waveforms, lyrics = zip(*batch, strict=True)
        probabilities.append(np.asarray(predict_fn(np.stack(waveforms), list(lyrics)))[:, genre])
    return np.concatenate(probabilities).astype(np.float64) if probabilities else np.zeros(0)


def _silenced(waveform: np.ndarray, start: int, end: int) -> np.ndarray:
    silenced = waveform.copy()
    silenced[start:end] = 0.0
    return silenced


def explain(
    predict_fn: PredictFn,
    waveform: np.ndarray,
    lyrics: str,
    genres: Sequence[str],
    words: Sequence[str],
    windows: Sequence[tuple[int, int]],
    sample_rate: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Explanation:
    """Explains the prediction for one song by occlusion.

    Args:
        predict_fn: waveforms float32 [n, samples], lyrics [n] -> probabilities [n, genres].
        waveform: the song, float32 [samples] mono at `sample_rate`, as the model reads it.
        lyrics: its raw lyrics, "" when it has none.
        genres: the genre names, in the order of the probabilities.
        words: the lyric words to delete one at a time (`lyric_words`).
        windows: the [start, end) sample ranges to silence one at a time (`time_windows`).
        sample_rate: of `waveform`, to give the windows in seconds.
        batch_size: variants per call of `predict_fn`.

    Returns:
        The `Explanation`, all effects measured on the genre that is most probable with both
        modalities.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    # One call for the song and its two modality occlusions: the prediction and their drops
    # then come from the same outputs.
    full, lyrics_hidden, audio_hidden = np.asarray(
        predict_fn(np.stack([waveform, waveform, np.zeros_like(waveform)]), [lyrics, "", lyrics]),
        dtype=np.float64,
    )
    predicted = int(np.argmax(full))
    with_both = float(full[predicted])
    modalities = ModalityEffect(
        with_both, float(lyrics_hidden[predicted]) if lyrics else None, float(audio_hidden[predicted])
    )

    def probabilities_of(variants: Iterable[tuple[np.ndarray, str]]) -> np.ndarray:
        return genre_probabilities(predict_fn, variants, predicted, batch_size)

    word_probabilities = probabilities_of((waveform, without_word(lyrics, word)) for word in words)
    window_probabilities = probabilities_of(
        (_silenced(waveform, start, end), lyrics) for start, end in windows
    )
    return Explanation(
        genres=tuple(genres),
        probabilities=tuple(full.tolist()),
        predicted=predicted,
        modalities=modalities,
        words=tuple(
            WordEffect(word, count_word(lyrics, word), float(p), float(with_both - p))
            for word, p in zip(words, word_probabilities, strict=True)
        ),
        windows=tuple(
            WindowEffect(start / sample_rate, end / sample_rate, float(p), float(with_both - p))
            for (start, end), p in zip(windows, window_probabilities, strict=True)
        ),
    )
