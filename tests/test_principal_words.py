from genre_fusion.features.principal_words import principal_words, stop_words

DOCUMENTED = """[Chorus]
Oh, baby, baby! Don't leave me tonight
Oh, baby, baby! Don't leave me tonight
I'm burning   like FIRE..."""


def test_the_documented_example():
    assert principal_words([DOCUMENTED], 200) == ["baby baby leave tonight burning like fire"]


def test_repeated_lines_are_kept_once_even_with_other_punctuation_or_case():
    lyrics = "Dancing in the moonlight\ndancing in the MOONLIGHT!\n[Verse 2]\nstars shining"
    assert principal_words([lyrics], 200) == ["dancing moonlight stars shining"]


def test_cap_unicode_and_empty_lyrics():
    assert principal_words(["one two three four five six"], 3) == ["one two three"]
    assert principal_words(["Été à Paris — très bien"], 10) == ["été paris très bien"]
    assert principal_words(["", "the and of", "[Instrumental]"], 10) == ["", "", ""]


def test_stop_words_come_from_the_shipped_list_and_are_dropped():
    words = stop_words()
    assert {"the", "dont", "yeah"} <= set(words)
    reduced = principal_words([" ".join(words) + " guitar"], 200)
    assert reduced == ["guitar"]


def test_deterministic_and_batch_independent():
    batch = principal_words([DOCUMENTED, "road whiskey road"], 200)
    assert batch == [principal_words([DOCUMENTED], 200)[0], principal_words(["road whiskey road"], 200)[0]]
