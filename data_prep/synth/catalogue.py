"""The collection's songs as planned: artists, titles, ids, genres, languages and tags.

Names are drawn from the word lists of ``resources/`` (``first_names``, ``last_names``,
``name_adjectives``, ``name_nouns``, ``title_nouns``) and tags from ``tag_words``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.sources import INSTRUMENTAL_LANG
from data_prep.synth.draws import between, pick, random_id
from data_prep.synth.resource_tables import load_table

ARTIST_SONGS = (3, 8)  # songs per artist, inclusive
SECOND_GENRE_PROB = 0.3
INSTRUMENTAL_PROB = 0.05
OTHER_LANG_PROB = 0.04
OTHER_LANG = "pt"
ID_LEN = 16
FIRST_NAMES: tuple[str, ...] = load_table("first_names")
LAST_NAMES: tuple[str, ...] = load_table("last_names")
BAND_PROB = 0.5
NAME_TRIES = 10
NAME_ADJECTIVES: tuple[str, ...] = load_table("name_adjectives")  # of bands, titles and albums
NAME_NOUNS: tuple[str, ...] = load_table("name_nouns")  # of bands
TITLE_NOUNS: tuple[str, ...] = load_table("title_nouns")  # of titles and albums
ALBUMS_PER_ARTIST = (1, 2)  # inclusive
TAG_WORDS: tuple[str, ...] = load_table("tag_words")
EXTRA_TAGS = (1, 3)  # tag words beside the genres, inclusive


@dataclass(frozen=True)
class Song:
    """One row of the collection's tables, and what its files are made from."""

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
        size = min(between(rng, ARTIST_SONGS), songs - low)  # leave enough for one more artist
        sizes.append(size)
        songs -= size
    return [*sizes, songs]


class Catalog:
    """Draws names, ids and labels from one generator, never repeating an artist name or an id."""

    def __init__(self, rng: np.random.Generator, genres: tuple[str, ...]):
        self.rng, self.genres = rng, genres
        self.ids: set[str] = set()
        self.artists: set[str] = set()

    def new_id(self) -> str:
        """A song id not drawn before."""
        while (song_id := random_id(self.rng, ID_LEN)) in self.ids:
            pass
        self.ids.add(song_id)
        return song_id

    def new_artist(self) -> str:
        """An artist name not drawn before: a band ("The Wild Owls") or a person."""
        rng = self.rng
        for _ in range(NAME_TRIES):
            if rng.random() < BAND_PROB:
                name = f"The {pick(rng, NAME_ADJECTIVES)} {pick(rng, NAME_NOUNS)}"
            else:
                name = f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"
            if name not in self.artists:
                break
        else:  # the name pools run out in large collections: number the repeats
            name = f"{name} {len(self.artists)}"
        self.artists.add(name)
        return name

    def title(self) -> str:
        """A song or album title."""
        return f"{pick(self.rng, NAME_ADJECTIVES)} {pick(self.rng, TITLE_NOUNS)}"

    def song(
        self, artist: str, album: str, genre: int, lang: str | None = None, song_id: str = "", fault: str = ""
    ) -> Song:
        """A song of ``artist``'s main ``genre``, sometimes with a second one; lang drawn unless given."""
        rng = self.rng
        labels = [self.genres[genre]]
        if rng.random() < SECOND_GENRE_PROB:
            labels.append(self.genres[(genre + rng.integers(1, len(self.genres))) % len(self.genres)])
        if lang is None:
            draw = rng.random()
            lang = (
                INSTRUMENTAL_LANG
                if draw < INSTRUMENTAL_PROB
                else OTHER_LANG
                if draw < INSTRUMENTAL_PROB + OTHER_LANG_PROB
                else "en"
            )
        words = rng.choice(len(TAG_WORDS), size=between(rng, EXTRA_TAGS), replace=False)
        tags = [*labels, *(TAG_WORDS[w] for w in words)] + (
            ["instrumental"] if lang == INSTRUMENTAL_LANG else []
        )
        return Song(
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


def plan_songs(catalog: Catalog, songs: int) -> list[Song]:
    """The healthy songs: genres as balanced as ``songs`` allows, each artist within one genre."""
    rng, k = catalog.rng, len(catalog.genres)
    planned = []
    for genre in range(k):
        for size in _artist_sizes(songs // k + (genre < songs % k), rng):
            artist = catalog.new_artist()
            albums = tuple(catalog.title() for _ in range(between(rng, ALBUMS_PER_ARTIST)))
            planned += [catalog.song(artist, pick(rng, albums), genre) for _ in range(size)]
    return planned
