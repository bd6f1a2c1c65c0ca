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


def test_bad_fractions_and_too_few_artists():
    with pytest.raises(SplitError, match="summing to 1"):
        parse_fractions("0.8,0.3,0.1")
    with pytest.raises(SplitError, match="three numbers"):
        parse_fractions("eighty,ten,ten")
    labels, artists = collection(songs=20, artists=4)
    with pytest.raises(SplitError, match="4 artists cannot be split"):
        split_by_artist(labels, artists, (0.8, 0.1, 0.1), seed=0)


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
