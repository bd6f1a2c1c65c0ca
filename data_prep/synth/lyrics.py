"""Lyrics of one lyric topic: stop words, filler words and the topic's words in tagged sections.

The word lists are data in ``resources/``, each a mapping of language (``en``, ``pt``) to words:
``lyric_topics.json`` (one mapping per topic: the words that carry it), ``fillers.json``
(shared by every topic), ``stop_words.json`` and ``adlibs.json``.
"""

from __future__ import annotations

import numpy as np

from data_prep.synth.draws import between, pick
from data_prep.synth.resource_tables import load_table

LYRIC_TOPICS: tuple[dict[str, tuple[str, ...]], ...] = load_table("lyric_topics")
FILLERS: dict[str, tuple[str, ...]] = load_table("fillers")
STOP_WORDS: dict[str, tuple[str, ...]] = load_table("stop_words")
ADLIBS: dict[str, tuple[str, ...]] = load_table("adlibs")
WORD_KINDS = (0.45, 0.3, 0.25)  # probability of a stop word, a filler word and a topic word
LINE_WORDS = (4, 9)  # words per line, inclusive
ENDINGS = ("", "", ",", ".", "!", "?", "...")
ADLIB_PROB = 0.1
SHOUT_PROB = 0.1  # chorus lines sometimes in capitals
VERSE_LINES, CHORUS_LINES, BRIDGE_LINES = 4, 4, 2
BRIDGE_PROB = 0.5


def _line(rng: np.random.Generator, topic: int, lang: str) -> str:
    """One capitalised line of topic ``topic`` in ``lang``, sometimes opened by an ad-lib."""
    pools = (STOP_WORDS[lang], FILLERS[lang], LYRIC_TOPICS[topic][lang])
    kinds = rng.choice(len(pools), size=between(rng, LINE_WORDS), p=WORD_KINDS)
    words = [pick(rng, pools[kind]) for kind in kinds]
    if rng.random() < ADLIB_PROB:
        words.insert(0, pick(rng, ADLIBS[lang]) + ",")
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words) + pick(rng, ENDINGS)


def synth_lyrics(topic: int, lang: str, rng: np.random.Generator) -> str:
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
