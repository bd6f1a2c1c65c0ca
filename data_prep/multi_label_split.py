"""Artist-grouped train/val/test split stratified over every genre of multi-label songs.

Iterative stratification (Sechidis, Tsoumakas & Vlahavas, "On the stratification of multi-label
data", ECML PKDD 2011) with whole artists as the items: an artist's label counts are how many of
its songs carry each genre, its size its song count. Each split wants its fraction of every
genre's songs and of all songs. Repeatedly the genre with the fewest unplaced artists is taken,
and each of its unplaced artists, largest first, goes to the split that still wants the most
songs of that genre (ties: the split that still wants the most songs, then a seeded random
order); what the split still wants of each of the artist's genres drops by the artist's songs of
it. Rare genres come first, while every split still wants them, so they spread instead of
landing wherever the common genres push their artists; `split_by_artist` stratifies on one
genre per song and leaves the others to chance.

On top of the paper, as `split_by_artist` does: each open split (fraction > 0) keeps an artist,
the last artists of a genre go to the open splits still without it when there are just enough
of them, and a repair step moves spare artists into any split a genre still misses (train
first: every genre needs train songs). The paper's examples without labels, placed by size,
cannot occur: every song has a genre. A generated collection of Music4All's size (109k songs,
16k artists, 87 genres) splits in about a second; `split_by_artist` takes two to three.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from data_prep.split import TRAIN, SplitError, _Assignment, artist_groups, assigned_splits


class _IterativeStratification(_Assignment):
    """`split_by_artist`'s bookkeeping of artists -> splits, fed (song, genre) pairs: its
    per-split genre counts (`songs`) and wanted counts (`target`) are then songs carrying each
    genre, its sizes count each song once."""

    def __init__(self, genre_of_pair, artist_of_pair, artist_of_song, fractions, seed: int):
        super().__init__(genre_of_pair, artist_of_pair, fractions, seed)
        # Counted from the pairs it would count a song once per genre; `move` adds it to the sizes.
        self.songs_of_artist = np.bincount(artist_of_song, minlength=len(self.split_of_artist))
        self.target_size = fractions * len(artist_of_song)
        self.artists_of_genre = np.diff(self.genre_bounds)
        # A genre with an artist per open split must reach each of them; any other genre train.
        self.required = np.zeros(self.target.shape, dtype=bool)  # [splits, genres]
        self.required[np.ix_(self.open, self.artists_of_genre >= len(self.open))] = True
        self.required[TRAIN] = True
        # A seeded random order of the splits for each artist, the last tie-break.
        self.split_rank = np.random.default_rng([seed, 1]).random((len(self.split_of_artist), len(fractions)))

    def stratify(self) -> None:
        """The paper's loop, the genre with the fewest unplaced artists (then songs) first."""
        while True:
            unplaced = self.split_of_artist[self.pair_artist] < 0
            unplaced_artists = np.bincount(self.pair_genre, weights=unplaced, minlength=self.target.shape[1])
            if not unplaced_artists.any():
                return
            waiting = np.where(unplaced_artists > 0, unplaced_artists, np.inf)
            unplaced_songs = np.bincount(
                self.pair_genre, weights=unplaced * self.pair_songs, minlength=len(waiting)
            )
            self._place_artists_of(np.lexsort((unplaced_songs, waiting))[0])

    def _place_artists_of(self, genre: int) -> None:
        artists, songs = self.artists_of(genre)
        free = self.split_of_artist[artists] < 0
        artists, songs = artists[free], songs[free]
        # Largest artists first, as in bin packing: the small ones left at the end even out the
        # counts (those of the genre and the sizes) that the large ones overshot.
        order = np.lexsort((self.tie_rank[artists], -songs, -self.songs_of_artist[artists]))
        for left, artist in enumerate(artists[order]):
            splits = self.open
            if self.unassigned <= len(self.open):  # the last artists: keep an artist for every split
                splits = [split for split in splits if self.may_take(split)]
            lacking = [
                split for split in splits if self.required[split, genre] and not self.songs[split, genre]
            ]
            if lacking and len(order) - left <= len(lacking):  # just enough artists left to reach them
                splits = lacking
            wanted = (self.target[:, genre] - self.songs[:, genre]).tolist()
            wanted_size = (self.target_size - self.size).tolist()
            rank = self.split_rank[artist].tolist()
            # Rounded so that float noise (0.7 * 10 - 6 > 0.1 * 10) does not beat the seeded tie-break.
            preferences = [
                (round(wanted[split], 6), round(wanted_size[split], 6), rank[split], split)
                for split in splits
            ]
            self.move(artist, max(preferences)[-1])

    def repair(self) -> None:
        """Moves an artist into each split a genre must reach but misses, rarest genre first.
        Into val and test only moves that lose no split a genre must reach; into train, failing
        such a move, the one that loses the fewest (a genre without train cannot be learned)."""
        rarest_first = np.argsort(self.artists_of_genre, kind="stable")
        later_splits = [split for split in self.open if split != TRAIN]
        for split, genre in itertools.chain(
            ((TRAIN, genre) for genre in rarest_first),
            itertools.product(later_splits, rarest_first),
        ):
            if self.required[split, genre] and not self.songs[split, genre]:
                self._bring(genre, split, may_break=split == TRAIN)

    def _bring(self, genre: int, split: int, may_break: bool) -> None:
        artists_in_split = np.zeros(self.target.shape, dtype=int)  # [splits, genres]
        np.add.at(artists_in_split, (self.split_of_artist[self.pair_artist], self.pair_genre), 1)
        candidates = []
        for artist in self.artists_of(genre)[0]:
            source = self.split_of_artist[artist]
            if self.artists_in[source] < 2:  # its split would be left empty
                continue
            genres = self.pair_genre[self.artist_bounds[artist] : self.artist_bounds[artist + 1]]
            lost = np.count_nonzero(self.required[source, genres] & (artists_in_split[source, genres] == 1))
            if lost == 0 or may_break:
                candidates.append((lost, self.songs_of_artist[artist], self.tie_rank[artist], artist))
        if candidates:
            self.move(min(candidates)[-1], split)


def split_multi_label_by_artist(
    label_sets: Sequence[tuple[int, ...]],
    artists: np.ndarray,
    fractions: tuple[float, float, float],
    seed: int,
) -> np.ndarray:
    """Assign each song to train/val/test, stratified over all its genres; returns [songs] split
    names.

    `label_sets` [songs] holds each song's genre indices (a non-empty tuple), `artists` [songs] its
    artist: no artist lands on two sides. `fractions` are shares of the songs (train positive); a
    split of fraction 0 stays empty, every other gets at least one artist. Every genre gets a train
    artist where the artists allow, and every genre with at least one artist per open split reaches
    each open split. Genres are taken rarest first by count of unplaced artists, not songs: the
    artist is the unit placed, so a genre of two 50-song artists can reach at most two splits and
    must be placed before one of twenty 1-song artists. Warns (`UserWarning`) when the artists
    allow only song shares that miss the fractions, or leave a genre out of train; raises
    `SplitError` when there are fewer artists than open splits or a song has no genre.
    """
    fractions = np.asarray(fractions, dtype=float)
    artist_names, artist_of_song = artist_groups(artists, fractions)
    label_counts = np.fromiter(map(len, label_sets), dtype=np.int64, count=len(label_sets))
    if not label_counts.all():
        without = np.flatnonzero(label_counts == 0)
        raise SplitError(
            f"{len(without)} songs have no genre to be stratified on (the first at positions "
            f"{without[:5].tolist()}); drop them or give each a genre"
        )
    genre_labels = np.fromiter(itertools.chain.from_iterable(label_sets), dtype=np.int64)
    song_of_label = np.repeat(np.arange(len(label_sets)), label_counts)
    genre_values, genre_of_label = np.unique(genre_labels, return_inverse=True)
    # One (song, genre) pair per genre a song carries, even if listed twice.
    pairs = np.unique(song_of_label * len(genre_values) + genre_of_label)
    song_of_pair, genre_of_pair = np.divmod(pairs, len(genre_values))

    stratification = _IterativeStratification(
        genre_of_pair, artist_of_song[song_of_pair], artist_of_song, fractions, seed
    )
    stratification.stratify()
    stratification.repair()

    return assigned_splits(stratification, fractions, genre_values, len(artist_names), artist_of_song)
