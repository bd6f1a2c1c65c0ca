"""Explain one prediction of a model of `genre_fusion.export` by occlusion.

    python -m genre_fusion.explain --model MODEL_DIR song.mp3 [--lyrics song.txt] --out DIR
        [--top-words 10] [--window-seconds 1.0]

The song is read as `genre_fusion.predict` reads it (`ExportedModel.load`: decoded at the model's
sample rate and clip length, lyrics as UTF-8) and explained through the export's
``serving_default`` signature by `genre_fusion.serving.explanation`: for the predicted genre, the
drop of its probability with the lyrics hidden and with the audio hidden, with each lyric word
deleted, and with each time window of ``--window-seconds`` silenced.

DIR must be new, empty, or hold only an earlier explanation of this command (which is replaced).
It receives ``explanation.json`` (every number), ``explanation.txt`` (the summary, also printed)
and ``explanation.png`` (modalities, words, time windows). Exit status: 0 when written, 2 for a
problem with the input (not an export, unreadable audio or lyrics, bad option, foreign DIR): one
``error:`` line names it and the fix, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from genre_fusion.features.audio import AudioDecodeError, DecoderMessages
from genre_fusion.features.lyrics import LyricsError
from genre_fusion.files.atomic import TEMPORARY_SUFFIX, write_atomically
from genre_fusion.serving.explanation import (
    Explanation,
    PredictFn,
    explain,
    lyric_words,
    time_windows,
)
from genre_fusion.serving.explanation_plot import explanation_png
from genre_fusion.serving.layout import LYRICS, PROBABILITIES, SERVING_SIGNATURE, WAVEFORM
from genre_fusion.serving.predict import ExportedModel, PredictError, Song

JSON_FILE, TEXT_FILE, PNG_FILE = "explanation.json", "explanation.txt", "explanation.png"
OUTPUT_FILES = (JSON_FILE, TEXT_FILE, PNG_FILE)
DEFAULT_TOP_WORDS = 10
DEFAULT_WINDOW_SECONDS = 1.0
TOP_REGIONS = 3
PROGRESS_DELAY_SECONDS = 3.0  # a bar only for explanations slow enough to need one
EXIT_USAGE = 2


class ExplainError(ValueError):
    """A problem with the command's input; the message names it and the fix."""


def check_out_folder(out: Path) -> None:
    """`ExplainError` unless `out` is new, empty or holds only this command's files."""
    if out.exists() and not out.is_dir():
        raise ExplainError(f"--out {out} is a file: name a new or empty folder")
    ours = set(OUTPUT_FILES) | {name + TEMPORARY_SUFFIX for name in OUTPUT_FILES}
    foreign = sorted(entry.name for entry in out.iterdir() if entry.name not in ours) if out.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ExplainError(
            f"--out {out} holds {shown}, not only an earlier explanation: name a new or empty folder"
        )


def serving_probabilities(model: ExportedModel) -> PredictFn:
    """The export's ``serving_default`` as a `PredictFn`: waveforms float32 [n, samples], lyrics
    [n] -> probabilities float32 [n, genres]."""
    serve = model.saved_model.signatures[SERVING_SIGNATURE]

    def probabilities(waveforms: np.ndarray, lyrics: list[str]) -> np.ndarray:
        inputs = {WAVEFORM: tf.constant(waveforms, tf.float32), LYRICS: tf.constant(lyrics, tf.string)}
        return serve(**inputs)[PROBABILITIES].numpy()

    return probabilities


def load_song(model: ExportedModel, song: Song) -> tuple[np.ndarray, str]:
    """(waveform float32 [clip_samples], lyrics or "") as predict reads them; `ExplainError`
    naming the unreadable file."""
    try:
        with DecoderMessages() as notes:  # libmpg123's notes would break the summary
            loaded = model.load(song)
    except AudioDecodeError as error:
        raise ExplainError(f"cannot use the audio ({error}): give an MP3, WAV, FLAC or OGG file") from error
    except (LyricsError, OSError) as error:
        raise ExplainError(
            f"cannot use --lyrics ({error}): give a UTF-8 text file, or leave --lyrics out"
        ) from error
    if notes.summary():
        print(f"note: {notes.summary()} while decoding", file=sys.stderr)
    return loaded


def _seconds(start: float, end: float) -> str:
    return f"{start:g}-{end:g} s"


def _modality_lines(explanation: Explanation) -> list[str]:
    modalities = explanation.modalities
    lines = [
        f"Modalities: probability of {explanation.predicted_genre}",
        f"  both                     {modalities.with_both:.3f}",
    ]
    if modalities.without_lyrics is None:
        lines.append("  lyrics hidden            no lyrics given")
    else:
        hidden, drop = modalities.without_lyrics, modalities.drop_lyrics
        lines.append(f'  lyrics hidden ("")       {hidden:.3f}  drop {drop:+.3f}')
    hidden, drop = modalities.without_audio, modalities.drop_audio
    lines.append(f"  audio hidden (silence)   {hidden:.3f}  drop {drop:+.3f}")
    shares = modalities.shares
    if shares is not None:
        even = " (neither modality's removal lowers it: split evenly)" if modalities.neither_drops else ""
        lines.append(f"  share of the prediction: audio {shares[0]:.0%}, lyrics {shares[1]:.0%}{even}")
    return lines


def _word_lines(explanation: Explanation, top_words: int) -> list[str]:
    title = f"Lyric words: drop of p({explanation.predicted_genre}) with every occurrence deleted"
    if not explanation.words:
        given = explanation.modalities.without_lyrics is not None
        return [title, "  the lyrics hold no principal words" if given else "  no lyrics given"]
    lines = [f"{title} ({len(explanation.words)} distinct words)"]
    width = max(len(effect.word) for effect in explanation.words)
    for side, effects in (
        ("supporting", explanation.supporting_words(top_words)),
        ("opposing", explanation.opposing_words(top_words)),
    ):
        lines.append(f"  {side}:" + ("" if effects else " none"))
        lines += [f"    {e.word:<{width}}  {e.drop:+.5f}  ({e.occurrences}x)" for e in effects]
    return lines


def _window_lines(explanation: Explanation, window_seconds: float) -> list[str]:
    lines = [f"Time windows of {window_seconds:g} s: drop of p({explanation.predicted_genre}) when silenced"]
    lines += [f"  {_seconds(w.start_seconds, w.end_seconds):<16}{w.drop:+.5f}" for w in explanation.windows]
    top = explanation.top_windows(TOP_REGIONS)
    regions = ", ".join(f"{_seconds(w.start_seconds, w.end_seconds)} ({w.drop:+.5f})" for w in top)
    lines.append("  top regions: " + (regions or "none; no window's silence lowers it"))
    return lines


def summary_text(
    explanation: Explanation, model_dir: Path, song: Song, top_words: int, window_seconds: float
) -> str:
    """The human-readable summary of `explanation` (what explanation.txt holds)."""
    p = explanation.probabilities
    ranked = sorted(range(len(p)), key=lambda index: -p[index])
    runners_up = ", ".join(f"{explanation.genres[i]} {p[i]:.3f}" for i in ranked[1:])
    lines = [
        "Explanation of one prediction by occlusion",
        f"  model:  {model_dir}",
        f"  song:   {song.audio}",
        f"  lyrics: {song.lyrics or 'none'}",
        f"Predicted genre: {explanation.predicted_genre} (p = {p[explanation.predicted]:.3f})"
        + (f"; then {runners_up}" if runners_up else ""),
    ]
    for section in (
        _modality_lines(explanation),
        _word_lines(explanation, top_words),
        _window_lines(explanation, window_seconds),
    ):
        lines += ["", *section]
    return "\n".join(lines) + "\n"


def _explain(args: argparse.Namespace) -> tuple[str, dict, bytes]:
    """The summary, JSON values and PNG of the explanation `args` ask for; `ExplainError` for bad input."""
    if args.top_words < 1:
        raise ExplainError(f"--top-words must be >= 1, got {args.top_words}")
    if not (math.isfinite(args.window_seconds) and args.window_seconds > 0):
        raise ExplainError(
            f"--window-seconds must be a positive number of seconds, not {args.window_seconds:g}"
        )
    check_out_folder(args.out)
    try:
        model = ExportedModel(args.model)
    except PredictError as error:
        raise ExplainError(str(error)) from error
    features = model.features
    try:
        windows = time_windows(features.clip_samples, features.sample_rate, args.window_seconds)
    except ValueError as error:
        raise ExplainError(
            f"--window-seconds {args.window_seconds:g}: {error}: choose at most {features.clip_seconds:g} s"
        ) from error
    song = Song(str(args.audio), args.audio, args.lyrics)
    waveform, lyrics = load_song(model, song)
    words = lyric_words(lyrics, features.max_tokens)

    serve = serving_probabilities(model)
    with tqdm(
        total=3 + len(words) + len(windows),
        desc="occlusion",
        unit="variant",
        delay=PROGRESS_DELAY_SECONDS,
        leave=False,
        file=sys.stderr,
    ) as progress:

        def counted(waveforms: np.ndarray, texts: list[str]) -> np.ndarray:
            probabilities = serve(waveforms, texts)
            progress.update(len(texts))
            return probabilities

        explanation = explain(counted, waveform, lyrics, model.genres, words, windows, features.sample_rate)

    values = {
        "model": str(args.model),
        "song": str(args.audio),
        "lyrics_file": None if args.lyrics is None else str(args.lyrics),
        "window_seconds": args.window_seconds,
        "top_words": args.top_words,
        **explanation.to_dict(args.top_words, TOP_REGIONS),
    }
    png = explanation_png(explanation, waveform, features.sample_rate, args.top_words)
    text = summary_text(explanation, args.model, song, args.top_words, args.window_seconds)
    return text, values, png


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.explain",
        description="Explain one prediction of a model of genre_fusion.export: which modality, "
        "lyric words and time windows drove it (occlusion).",
        allow_abbrev=False,
    )
    parser.add_argument("--model", required=True, type=Path, help="folder written by genre_fusion.export")
    parser.add_argument("audio", type=Path, help="the song's audio file (MP3, WAV, FLAC, OGG)")
    parser.add_argument("--lyrics", type=Path, metavar="FILE", help="its lyrics (UTF-8); left out: no lyrics")
    parser.add_argument(
        "--out", required=True, type=Path, help=f"folder for {', '.join(OUTPUT_FILES)} (new or empty)"
    )
    parser.add_argument(
        "--top-words",
        type=int,
        default=DEFAULT_TOP_WORDS,
        help=f"supporting and opposing words to show (default {DEFAULT_TOP_WORDS})",
    )
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=DEFAULT_WINDOW_SECONDS,
        help=f"length of the time windows silenced one at a time (default {DEFAULT_WINDOW_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    try:
        text, values, png = _explain(args)
    except ExplainError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        write_atomically(args.out / JSON_FILE, json.dumps(values, indent=2, ensure_ascii=False) + "\n")
        write_atomically(args.out / TEXT_FILE, text)
        write_atomically(args.out / PNG_FILE, png)
    except OSError as error:
        print(f"error: cannot write --out {args.out}: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(text, end="")
    print(f"wrote {', '.join(OUTPUT_FILES)} to {args.out}", file=sys.stderr)
    return 0
