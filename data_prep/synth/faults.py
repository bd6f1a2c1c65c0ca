"""The broken songs of ``faults=True``: one per fault of ``FAULTS``, and what each is on disk.

=====================  ==============================================================
fault                  the song
=====================  ==============================================================
corrupt_audio          its .mp3 holds random bytes without an MPEG frame sync
truncated_audio        its .mp3 is cut after its first ``TRUNCATED_BYTES`` bytes
zero_byte_audio        its .mp3 is empty
missing_audio          it has no .mp3
silent_audio           its .mp3 holds silence
short_audio            its clip lasts ``SHORT_SECONDS``
missing_lyrics         it has no lyrics file
invalid_utf8_lyrics    its lyrics start with bytes that are not UTF-8
no_genre               its genres field is empty (its tags lose the genres too)
duplicate_id           another artist's song under an id already taken: no files of its own
=====================  ==============================================================
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import soundfile as sf

from data_prep.sources import AUDIO_FOLDER, AUDIO_SUFFIX, LYRICS_FOLDER, LYRICS_SUFFIX
from data_prep.synth.catalogue import Catalog, Song

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


def plan_faults(catalog: Catalog, healthy: list[Song]) -> list[Song]:
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


def song_files(song: Song) -> tuple[str, ...]:
    """The files ``song`` has on disk, relative to the collection: a missing_* fault leaves its file
    out, and the files of a duplicated id belong to the first song."""
    if song.fault == "duplicate_id":
        return ()
    audio = () if song.fault == "missing_audio" else (f"{AUDIO_FOLDER}/{song.id}{AUDIO_SUFFIX}",)
    lyrics = () if song.fault == "missing_lyrics" else (f"{LYRICS_FOLDER}/{song.id}{LYRICS_SUFFIX}",)
    return audio + lyrics


def audio_bytes(audio: np.ndarray, sr: int, fault: str, rng: np.random.Generator) -> bytes:
    """The .mp3 file's content for a song with ``fault`` ("" when healthy)."""
    if fault == "zero_byte_audio":
        return b""
    if fault == "corrupt_audio":  # without 0xff there is no MPEG frame sync a decoder could lock onto
        return rng.integers(0, 0xFF, CORRUPT_BYTES, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros_like(audio) if fault == "silent_audio" else audio, sr, format="MP3")
    return buffer.getvalue()[:TRUNCATED_BYTES] if fault == "truncated_audio" else buffer.getvalue()
