import numpy as np
import pytest

from data_prep.multi_label_split import split_multi_label_by_artist
from data_prep.split import SplitError, split_by_artist

SPLITS = ("train", "val", "test")
GENRES, RARE_GENRES = 30, 4


def multi_label_collection(seed: int, artists: int = 400):
    """~2,600 songs of `artists` artists of 1-12 songs. Each artist draws a palette of 1-5 of the
    26 common genres, Zipf-like (the most frequent 26 times the least), so genres go together
    within an artist; the 4 rare genres join the palettes of 3-6 artists each. A song carries 1-4
    genres of its artist's palette (a rare one on the artist's first song at least), as sorted
    indices like `assign_labels` gives in multi mode."""
    rng = np.random.default_rng(seed)
    common = GENRES - RARE_GENRES
    frequency = 1 / np.arange(1, common + 1)
    palettes = [
        set(rng.choice(common, size=rng.integers(1, 6), replace=False, p=frequency / frequency.sum()))
        for _ in range(artists)
    ]
    for genre in range(common, GENRES):
        for artist in rng.choice(artists, size=rng.integers(3, 7), replace=False):
            palettes[artist].add(genre)
    label_sets, artist_of_song = [], []
    for artist, palette in enumerate(palettes):
        choices = sorted(palette)
        for song in range(rng.integers(1, 13)):
            genres = set(rng.choice(choices, size=min(len(choices), rng.integers(1, 5)), replace=False))
            if song == 0:
                genres |= {genre for genre in choices if genre >= common}
            label_sets.append(tuple(sorted(int(genre) for genre in genres)))
            artist_of_song.append(f"artist{artist}")
    return label_sets, np.array(artist_of_song)


def songs_per_split(label_sets, split) -> np.ndarray:
    """[splits, genres]: how many songs of each genre each split holds."""
    counts = np.zeros((len(SPLITS), GENRES))
    for labels, side in zip(label_sets, split, strict=True):
        counts[SPLITS.index(side), list(labels)] += 1
    return counts


def genre_deviation(label_sets, split, fractions) -> float:
    """Mean over genres and splits of |the split's share of the genre's songs - its fraction|."""
    counts = songs_per_split(label_sets, split)
    return float(np.mean(np.abs(counts / counts.sum(axis=0) - np.array(fractions)[:, None])))


def one_artist_share(label_sets, artists) -> float:
    """The mean share of a genre's songs that one of its artists holds: the grain of any artist split."""
    shares = []
    for genre in range(GENRES):
        carriers = artists[[genre in labels for labels in label_sets]]
        shares.append(np.mean(np.unique(carriers, return_counts=True)[1]) / len(carriers))
    return float(np.mean(shares))


def test_no_artist_on_two_sides_and_every_song_assigned():
    label_sets, artists = multi_label_collection(seed=0)
    split = split_multi_label_by_artist(label_sets, artists, (0.8, 0.1, 0.1), seed=0)
    assert split.shape == (len(label_sets),)
    assert set(split) == set(SPLITS)
    assert all(len(set(split[artists == artist])) == 1 for artist in np.unique(artists))


def test_reproducible_from_the_seed():
    label_sets, artists = multi_label_collection(seed=1)
    first = split_multi_label_by_artist(label_sets, artists, (0.7, 0.1, 0.2), seed=3)
    assert np.array_equal(first, split_multi_label_by_artist(label_sets, artists, (0.7, 0.1, 0.2), seed=3))
    assert not np.array_equal(
        first, split_multi_label_by_artist(label_sets, artists, (0.7, 0.1, 0.2), seed=4)
    )


@pytest.mark.parametrize("fractions", [(0.7, 0.1, 0.2), (0.8, 0.1, 0.1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_genre_lands_in_every_split_in_proportion_closer_than_first_genre_stratification(
    fractions, seed: int
):
    label_sets, artists = multi_label_collection(seed)
    split = split_multi_label_by_artist(label_sets, artists, fractions, seed)
    deviation = genre_deviation(label_sets, split, fractions)
    # Whole artists move a genre's shares in steps of one artist's part of it (~0.06 here, the
    # deviation a first-genre split leaves); stratifying on every genre gets within half a step.
    assert deviation <= 0.5 * one_artist_share(label_sets, artists)

    counts = songs_per_split(label_sets, split)
    for genre in range(GENRES):
        if len(set(artists[[genre in labels for labels in label_sets]])) >= 3:
            assert np.all(counts[:, genre] > 0), genre

    # Stratifying on each song's first genre (the lowest index, the most frequent of its genres)
    # leaves its other genres to chance: at least twice the deviation over all genres.
    first_genres = np.array([labels[0] for labels in label_sets])
    by_first_genre = split_by_artist(first_genres, artists, fractions, seed)
    assert deviation <= 0.5 * genre_deviation(label_sets, by_first_genre, fractions)


@pytest.mark.parametrize("fractions", [(0.7, 0.1, 0.2), (0.8, 0.1, 0.1)])
def test_split_shares_near_the_fractions(fractions):
    label_sets, artists = multi_label_collection(seed=2)
    split = split_multi_label_by_artist(label_sets, artists, fractions, seed=2)
    shares = [np.mean(split == name) for name in SPLITS]
    np.testing.assert_allclose(shares, fractions, atol=0.02)


def test_an_empty_test_split():
    label_sets, artists = multi_label_collection(seed=3)
    split = split_multi_label_by_artist(label_sets, artists, (0.9, 0.1, 0.0), seed=0)
    assert set(split) == {"train", "val"}
    assert np.mean(split == "val") == pytest.approx(0.1, abs=0.02)


def test_a_genre_of_three_artists_reaches_every_split_and_one_of_one_artist_train():
    # Genre 2 has three artists, two of them the only two of genre 1: placed first, as the rarer
    # genre, both go to train, and genre 2's third artist alone reaches only one of val and test.
    # Genre 3 has one artist, who must be in train; genre 0 fills the rest.
    label_sets = [(1, 2)] * 10 + [(1, 2)] * 10 + [(2,)] * 10 + [(3,)] * 10 + [(0,)] * 400
    artists = np.array(
        ["pair_a"] * 10
        + ["pair_b"] * 10
        + ["third"] * 10
        + ["solo"] * 10
        + [f"f{i // 5}" for i in range(400)]
    )
    for seed in range(5):
        split = split_multi_label_by_artist(label_sets, artists, (0.8, 0.1, 0.1), seed)
        assert set(split[:30]) == set(SPLITS), seed  # genre 2
        assert "train" in set(split[:20]), seed  # genre 1
        assert set(split[artists == "solo"]) == {"train"}, seed


def test_fewer_artists_than_splits_is_refused():
    with pytest.raises(SplitError, match=r"2 artists cannot be split .*needs at least 3"):
        split_multi_label_by_artist([(0,), (0, 1), (1,)], np.array(["a", "a", "b"]), (0.8, 0.1, 0.1), seed=0)


def test_a_song_without_genre_is_refused():
    with pytest.raises(SplitError, match=r"1 songs have no genre .*positions \[1\]"):
        split_multi_label_by_artist([(0,), (), (1,)], np.array(["a", "b", "c"]), (0.8, 0.1, 0.1), seed=0)


def test_a_few_huge_artists_make_the_fractions_unreachable_with_a_warning():
    label_sets = [(0,)] * 300 + [(0, 1)] * 10
    artists = np.array([f"huge{i // 100}" for i in range(300)] + [f"small{i // 2}" for i in range(10)])
    with pytest.warns(UserWarning, match=r"grouping 310 songs by their 8 artists gives train/val/test"):
        split = split_multi_label_by_artist(label_sets, artists, (0.8, 0.1, 0.1), seed=0)
    assert set(split) == set(SPLITS)
