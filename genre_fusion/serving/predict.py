"""Classify audio files, with or without lyrics, with a model of `genre_fusion.export`.

    python -m genre_fusion.predict --model MODEL_DIR a.mp3 b.flac [--lyrics a.txt --lyrics b.txt]
    python -m genre_fusion.predict --model MODEL_DIR --manifest songs.csv [--top-k 3] [--json]

Audio in any format the preparation reads (MP3, WAV, FLAC, OGG; any rate and channel count) is
decoded with `genre_fusion.audio.decode_audio` at the model's sample rate and clip length (from
MODEL_DIR/features.json: with a pretrained audio encoder, the encoder's rate, 16 kHz for musicnn
and the TF Hub modules), zero-padded to the clip, which the export counts as no audio; lyrics files
are read with `genre_fusion.lyrics.read_lyrics`.
``--lyrics`` names one file and is repeated for more; the lyrics files pair with the audio files
in order (fewer lyrics than audio files: the rest have none; more: an error). ``--manifest`` reads
the columns ``id``, ``audio`` and ``lyrics`` (optional; empty = no lyrics) of a manifest CSV (see
DESIGN.md); paths are relative to its folder.

Songs go through the SavedModel in batches of ``--batch-size``. Output, per song in input order:
a table row with its top-k genres and probabilities, or with ``--json`` one JSON object per line
(``{"song", "audio", "lyrics", "genres": [{"genre", "probability"}, ...]}``). A song that cannot
be read gets an error line on stderr (and ``{"song", "audio", "lyrics", "error"}`` under
``--json``) and the others go on. Exit status: 0 when at least one song was classified, 1 when
none was, 2 for a usage error (no such model, unreadable manifest, bad option).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from genre_fusion.features.audio import AudioDecodeError, DecoderMessages, decode_audio
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.lyrics import LyricsError, read_lyrics
from genre_fusion.serving.layout import (
    FEATURES_FILE,
    LABELS_FILE,
    LYRICS,
    PROBABILITIES,
    SERVING_SIGNATURE,
    TOP_GENRES,
    TOP_PROBABILITIES,
    WAVEFORM,
)

DEFAULT_TOP_K = 3
DEFAULT_BATCH_SIZE = 16
PROBABILITY_FORMAT = "{:.3f}"
MANIFEST_ID, MANIFEST_AUDIO, MANIFEST_LYRICS = "id", "audio", "lyrics"
EXIT_NOTHING_CLASSIFIED = 1
EXIT_USAGE = 2


class PredictError(ValueError):
    """A problem with the model or the song list as a whole (not with one song)."""


@dataclass(frozen=True)
class Song:
    """A song to classify: `name` as shown in the output, its audio file and lyrics file (or None)."""

    name: str
    audio: Path
    lyrics: Path | None = None


@dataclass(frozen=True)
class Prediction:
    """`genres`: the top genres with their probabilities, most probable first; or an `error`."""

    song: Song
    genres: tuple[tuple[str, float], ...] = ()
    error: str = ""

    def to_json(self) -> str:
        values = {
            "song": self.song.name,
            "audio": str(self.song.audio),
            "lyrics": None if self.song.lyrics is None else str(self.song.lyrics),
        }
        if self.error:
            values["error"] = self.error
        else:
            values["genres"] = [{"genre": genre, "probability": p} for genre, p in self.genres]
        return json.dumps(values, ensure_ascii=False)


class ExportedModel:
    """An exported genre model: `classify` songs; `features` (sample rate and clip length to
    decode at), `genres` (all names), `top_k` (genres it ranks per song) and `saved_model` (the
    loaded SavedModel, for its other signatures)."""

    def __init__(self, model_dir: str | Path):
        """Raises `PredictError` naming the problem when `model_dir` is not a readable export."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise _not_an_export(model_dir, "a file, not a folder" if model_dir.exists() else "not found")
        for name in (FEATURES_FILE, LABELS_FILE):
            if not (model_dir / name).is_file():
                raise _not_an_export(model_dir, f"{name} is missing")
        if not tf.saved_model.contains_saved_model(str(model_dir)):
            raise _not_an_export(model_dir, "no saved_model.pb")
        try:
            features = json.loads((model_dir / FEATURES_FILE).read_text(encoding="utf-8"))
            self.features = FeatureConfig.from_dict(features)
            self.genres = tuple((model_dir / LABELS_FILE).read_text(encoding="utf-8").splitlines())
            self.saved_model = tf.saved_model.load(str(model_dir))  # kept: its signatures need it alive
        except (OSError, ValueError, TypeError, tf.errors.OpError) as error:
            raise _not_an_export(model_dir, f"unreadable: {error}") from error
        self._serve = self.saved_model.signatures.get(SERVING_SIGNATURE)
        inputs, outputs = (
            (set(self._serve.structured_input_signature[1]), self._serve.structured_outputs)
            if self._serve is not None
            else (set(), {})
        )
        if inputs != {WAVEFORM, LYRICS} or not {PROBABILITIES, TOP_GENRES, TOP_PROBABILITIES} <= set(outputs):
            raise _not_an_export(model_dir, f"no {SERVING_SIGNATURE} signature of genre_fusion.export")
        scored = outputs[PROBABILITIES].shape[-1]
        if scored != len(self.genres):
            raise _not_an_export(model_dir, f"{LABELS_FILE} has {len(self.genres)} genres, model {scored}")
        self.top_k = int(outputs[TOP_GENRES].shape[-1])

    def load(self, song: Song) -> tuple[np.ndarray, str]:
        """A song -> (waveform float32 [clip_samples], lyrics text or ""); raises `AudioDecodeError`
        or `LyricsError` (also for a lyrics file that was named but is missing)."""
        clip = decode_audio(song.audio, self.features.sample_rate, self.features.clip_seconds)
        if song.lyrics is None:
            return clip.waveform, ""
        lyrics = read_lyrics(song.lyrics)
        if lyrics is None:
            raise LyricsError("missing lyrics", str(song.lyrics))
        return clip.waveform, lyrics

    def classify(
        self, waveforms: np.ndarray, lyrics: Sequence[str], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """waveforms float32 [batch, samples], lyrics [batch] -> per song the `top_k` (at most
        `self.top_k`) most probable genres with their probabilities."""
        outputs = self._serve(**{WAVEFORM: tf.constant(waveforms), LYRICS: tf.constant(list(lyrics))})
        names = outputs[TOP_GENRES].numpy()[:, :top_k]
        probabilities = outputs[TOP_PROBABILITIES].numpy()[:, :top_k]
        return [
            [(name.decode("utf-8"), float(p)) for name, p in zip(row_names, row_p, strict=True)]
            for row_names, row_p in zip(names, probabilities, strict=True)
        ]


def _not_an_export(model_dir: Path, problem: str) -> PredictError:
    return PredictError(
        f"--model {model_dir} is not an exported model ({problem}): make one with "
        "`python -m genre_fusion.export --run RUN_DIR --out MODEL_DIR`"
    )


def read_manifest_songs(path: str | Path) -> list[Song]:
    """The songs of a manifest CSV: columns id and audio, lyrics optional (empty = no lyrics),
    other columns ignored; paths relative to the manifest's folder. `PredictError` if unreadable,
    if a column is missing, a row has more fields than the header or an empty id or audio."""
    path = Path(path)
    expected = (
        f"expected a comma-separated CSV with a header row and columns {MANIFEST_ID},{MANIFEST_AUDIO},"
        f"{MANIFEST_LYRICS} (a field that holds commas in double quotes)"
    )
    try:
        with warnings.catch_warnings():
            # pandas only warns when the first row is longer than the header, and drops the rest.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.ParserWarning as error:
        raise PredictError(f"manifest {path}: a row has more fields than the header: {expected}") from error
    except pd.errors.ParserError as error:
        raise PredictError(f"manifest {path}: {str(error).strip()}: {expected}") from error
    except (OSError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise PredictError(f"cannot read manifest {path}: {error}") from error
    missing = [column for column in (MANIFEST_ID, MANIFEST_AUDIO) if column not in table.columns]
    if missing:
        raise PredictError(f"manifest {path} has no column {', '.join(missing)}: {expected}")
    table = table.apply(lambda column: column.str.strip())
    empty = table.index[(table[MANIFEST_ID] == "") | (table[MANIFEST_AUDIO] == "")]
    if len(empty):
        lines = ", ".join(str(index + 2) for index in empty[:5])  # line 1 is the header
        raise PredictError(f"manifest {path} has an empty {MANIFEST_ID} or {MANIFEST_AUDIO} on line {lines}")
    folder = path.parent
    lyrics = table[MANIFEST_LYRICS] if MANIFEST_LYRICS in table.columns else [""] * len(table)
    return [
        Song(song_id, folder / audio, folder / text if text else None)
        for song_id, audio, text in zip(table[MANIFEST_ID], table[MANIFEST_AUDIO], lyrics, strict=True)
    ]


def songs_from_arguments(audio: Sequence[Path], lyrics: Sequence[Path]) -> list[Song]:
    """AUDIO files paired in order with --lyrics files; `PredictError` if there are more lyrics."""
    if len(lyrics) > len(audio):
        raise PredictError(
            f"{len(lyrics)} --lyrics files for {len(audio)} audio files: lyrics pair with audio in order"
        )
    return [
        Song(str(path), path, lyrics[index] if index < len(lyrics) else None)
        for index, path in enumerate(audio)
    ]


def predict(
    model: ExportedModel, songs: Sequence[Song], top_k: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[Prediction]:
    """Classify `songs` in batches; yields one `Prediction` per song, in order. Decoding runs in
    threads (soundfile and soxr release the GIL), one batch at a time to bound memory."""
    with ThreadPoolExecutor(min(batch_size, os.cpu_count() or 1)) as pool:
        for start in range(0, len(songs), batch_size):
            batch = songs[start : start + batch_size]
            with DecoderMessages() as notes:  # libmpg123's notes would break the table
                loaded = list(pool.map(_try_load, [model] * len(batch), batch))
            if notes.summary():
                print(f"note: {notes.summary()} while decoding", file=sys.stderr)
            good = [item for item in loaded if not isinstance(item, str)]
            ranked = iter(
                model.classify(np.stack([w for w, _ in good]), [text for _, text in good], top_k)
                if good
                else []
            )
            for song, item in zip(batch, loaded, strict=True):
                if isinstance(item, str):
                    yield Prediction(song, error=item)
                else:
                    yield Prediction(song, genres=tuple(next(ranked)))


def _try_load(model: ExportedModel, song: Song) -> tuple[np.ndarray, str] | str:
    """The loaded song, or the reason it cannot be used."""
    try:
        return model.load(song)
    except (AudioDecodeError, LyricsError) as error:
        return str(error)
    except OSError as error:  # e.g. a lyrics file without read permission
        return f"unreadable file: {error}"


class _Table:
    """Rows of `song  genre probability  genre probability ...`, columns aligned."""

    def __init__(self, songs: Sequence[Song], genres: Sequence[str], top_k: int):
        self.name_width = max(len(song.name) for song in songs)
        self.genre_width = max(len(genre) for genre in genres)
        self.top_k = top_k

    def header(self) -> str:
        cell_width = self.genre_width + 1 + len(PROBABILITY_FORMAT.format(1.0))
        cells = [f"{f'#{rank}':<{cell_width}}" for rank in range(1, self.top_k + 1)]
        return f"{'song':<{self.name_width}}  " + "  ".join(cells).rstrip()

    def row(self, prediction: Prediction) -> str:
        cells = [
            f"{genre:<{self.genre_width}} {PROBABILITY_FORMAT.format(probability)}"
            for genre, probability in prediction.genres
        ]
        return f"{prediction.song.name:<{self.name_width}}  " + "  ".join(cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.predict",
        description="Classify songs (audio + optional lyrics) with a model of genre_fusion.export.",
        allow_abbrev=False,
    )
    parser.add_argument("--model", required=True, type=Path, help="folder written by genre_fusion.export")
    parser.add_argument("audio", nargs="*", type=Path, help="audio files (MP3, WAV, FLAC, OGG)")
    parser.add_argument(
        "--lyrics",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a lyrics file; repeat for more: paired with the audio files in order",
    )
    parser.add_argument(
        "--manifest", type=Path, help="CSV with columns id,audio,lyrics (paths relative to it)"
    )
    parser.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, help=f"genres per song (default {DEFAULT_TOP_K})"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per song and line")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"songs per model call (default {DEFAULT_BATCH_SIZE})",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (--lyrics takes one file: repeat it, "
            "--lyrics a.txt --lyrics b.txt; the audio files go together, before or after the options)"
        )
    if not args.audio and not args.manifest:
        parser.error("give audio files, --manifest CSV, or both")
    for option, value in (("--top-k", args.top_k), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{option} must be >= 1, got {value}")
    try:
        songs = songs_from_arguments(args.audio, args.lyrics)
        if args.manifest:
            songs += read_manifest_songs(args.manifest)
        model = ExportedModel(args.model)
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    if not songs:
        print(f"error: {args.manifest} lists no songs", file=sys.stderr)
        return EXIT_USAGE
    top_k = min(args.top_k, model.top_k)
    if top_k < args.top_k:
        print(f"note: the model ranks its top {model.top_k} genres; showing {top_k}", file=sys.stderr)
    table = _Table(songs, model.genres, top_k)
    if not args.json:
        print(table.header())
    classified = 0
    for prediction in predict(model, songs, top_k, args.batch_size):
        if prediction.error:
            print(f"error: {prediction.song.name}: {prediction.error}", file=sys.stderr)
        else:
            classified += 1
        if args.json:
            print(prediction.to_json(), flush=True)
        elif not prediction.error:
            print(table.row(prediction), flush=True)
    print(f"{classified} of {len(songs)} songs classified", file=sys.stderr)
    return 0 if classified else EXIT_NOTHING_CLASSIFIED
