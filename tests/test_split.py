import itertools
import re

import numpy as np
import pytest

from data_prep.labels import assign_labels, build_vocabulary, drop_unused_genres
from data_prep.split import SplitError, parse_fractions, split_by_artist


def collection(songs: int = 600, artists: int = 120, genres: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    artist = rng.integers(0, artists, songs)
    genre_of_artist = rng.integers(0, genres, artists)
    return genre_of_artist[artist], np.array([f"artist{a}" for a in artist])


def test_no_artist_on_two_sides_and_every_genre_in_train():
    labels, artists = collection()
    split = split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=1)
    sides = {artist: set(split[artists == artist]) for artist in np.unique(artists)}
    assert all(len(side) == 1 for side in sides.values())
    assert set(labels[split == "train"]) == set(labels)
    fractions = [np.mean(split == name) for name in ("train", "val", "test")]
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.05)


def test_a_rare_genre_is_brought_into_train():
    labels, artists = collection()
    labels = labels.copy()
    labels[artists == "artist7"] = 99  # one artist holds the only songs of a genre
    for seed in range(5):
        split = split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=seed)
        assert set(split[labels == 99]) == {"train"}


def test_reproducible_from_the_seed():
    labels, artists = collection()
    first = split_by_artist(labels, artists, (0.7, 0.1, 0.2), seed=3)
    assert np.array_equal(first, split_by_artist(labels, artists, (0.7, 0.1, 0.2), seed=3))
    assert not np.array_equal(first, split_by_artist(labels, artists, (0.7, 0.1, 0.2), seed=4))
    assert np.mean(first == "test") == pytest.approx(0.2, abs=0.05)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.8,0.3,0.1", "summing to 1, they sum to 1.2"),
        ("eighty,ten,ten", "three numbers"),
        ("0.9,0.1", "three fractions .* got 2"),
        ("nan,0.1,0.1", "finite"),
        ("inf,0.1,0.1", "finite"),
        ("1.2,-0.1,-0.1", "cannot be negative"),
        ("1,0,0", "val fractions must be positive"),
        ("0,0.5,0.5", "train and val fractions must be positive"),
    ],
)
def test_bad_fractions_are_refused_naming_the_option(text: str, message: str):
    with pytest.raises(SplitError, match=rf"^--split '{re.escape(text)}': .*{message}"):
        parse_fractions(text)


def test_fractions_with_an_empty_test_split():
    assert parse_fractions("0.9,0.1,0") == (0.9, 0.1, 0.0)
    labels, artists = collection()
    split = split_by_artist(labels, artists, (0.9, 0.1, 0.0), seed=0)
    assert set(split) == {"train", "val"}
    assert np.mean(split == "val") == pytest.approx(0.1, abs=0.03)


def test_fewer_artists_than_splits_is_refused():
    labels, artists = np.array([0, 0, 1]), np.array(["a", "a", "b"])
    with pytest.raises(SplitError, match=r"2 artists cannot be split .*needs at least 3"):
        split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=0)


def test_few_artists_get_the_closest_split_with_a_warning():
    labels, artists = np.zeros(40, dtype=int), np.repeat([f"artist{a}" for a in range(8)], 5)
    achieved = r"8 artists gives train/val/test 0\.750/0\.125/0\.125 of the songs for the requested 0\.8/"
    with pytest.warns(UserWarning, match=achieved):
        split = split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=0)
    assert [len(set(artists[split == name])) for name in ("train", "val", "test")] == [6, 1, 1]


@pytest.mark.filterwarnings("ignore:grouping .* songs by their")
def test_too_few_artists_for_every_genre_in_train_keep_every_split_and_warn():
    labels, artists = np.array([0, 0, 1, 2]), np.array(["a", "a", "b", "c"])  # one artist per genre
    with pytest.warns(UserWarning, match=r"no song in train for genre labels \d, \d: 3 artists cannot"):
        split = split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=0)
    assert sorted(set(split)) == ["test", "train", "val"]


def genres_of_few_artists(seed: int, genres: int = 10, songs: int = 400):
    """~`songs` songs of `genres` genres of 3-10 artists each, artists of uneven sizes, one genre each."""
    rng = np.random.default_rng(seed)
    genre_of_artist = np.repeat(np.arange(genres), rng.integers(3, 11, genres))
    weight = rng.uniform(0.3, 3.0, len(genre_of_artist))
    songs_of_artist = np.maximum(1, np.round(weight / weight.sum() * songs)).astype(int)
    artist_of_song = np.repeat(np.arange(len(genre_of_artist)), songs_of_artist)
    return genre_of_artist[artist_of_song], np.array([f"artist{a}" for a in artist_of_song])


def closest_train_share(songs_of_artist: np.ndarray, fraction: float) -> float:
    """The smallest |train share - fraction| of any grouping that leaves val and test an artist each."""
    total, count = songs_of_artist.sum(), len(songs_of_artist)
    held_out = [
        sum(songs_of_artist[list(subset)])
        for size in range(2, count)
        for subset in itertools.combinations(range(count), size)
    ]
    return min(abs(1 - np.array(held_out) / total - fraction))


@pytest.mark.filterwarnings("ignore:grouping .* songs by their")  # shares off: tested elsewhere
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_genre_of_three_or_more_artists_reaches_every_split_in_proportion(seed: int):
    labels, artists = genres_of_few_artists(seed)
    split = split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=seed)
    for genre in np.unique(labels):
        songs = split[labels == genre]
        assert set(songs) == {"train", "val", "test"}, genre
        # As close to 0.8 as the genre's artists allow, within 0.15.
        _, songs_of_artist = np.unique(artists[labels == genre], return_counts=True)
        reachable = closest_train_share(songs_of_artist, 0.8)
        assert abs(np.mean(songs == "train") - 0.8) <= reachable + 0.15, genre
    # No genre crowds a small split: each holds at most twice its share of the songs there.
    for name in ("val", "test"):
        share_there = np.bincount(labels[split == name], minlength=10) / np.sum(split == name)
        assert np.all(share_there <= 2 * np.bincount(labels) / len(labels) + 0.05), name
    fractions = [np.mean(split == name) for name in ("train", "val", "test")]
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.07)


def test_vocabulary_and_label_modes():
    genre_lists = [("rock", "indie"), ("pop",), ("rock",), ("indie", "rock"), ("jazz",), ("polka",)]
    vocabulary = build_vocabulary(genre_lists, 3)
    assert vocabulary == ("rock", "indie", "jazz")  # by frequency, ties by name
    assert assign_labels(("indie", "rock"), vocabulary, "single") == (1,)
    assert assign_labels(("indie", "rock"), vocabulary, "multi") == (0, 1)
    assert assign_labels(("polka",), vocabulary, "single") == ()
    single = [
        assign_labels(g, vocabulary, "single") for g in genre_lists if assign_labels(g, vocabulary, "single")
    ]
    kept, relabelled = drop_unused_genres(vocabulary, single)
    assert kept == ("rock", "indie", "jazz")
    kept, relabelled = drop_unused_genres(vocabulary, [(0,), (2,)])
    assert kept == ("rock", "jazz") and relabelled == [(0,), (1,)]
