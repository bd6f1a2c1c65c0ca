"""A synthetic demo collection in Music4All's exact layout, built so that fusion visibly pays off.

``write_demo_collection(out_dir, songs, genres=K, ...)`` writes the five tab-separated CSVs of
Music4All (``id_information``, ``id_genres``, ``id_lang``, ``id_metadata``, ``id_tags``), one
MP3 clip per song in ``audios/`` and one lyrics file per song in ``lyrics/``; with ``faults=True``
it adds one broken song per fault of ``FAULTS`` and lists them in ``faults.csv`` (id, fault).
``synth.json`` records the settings. Synth writes only into a new or empty folder or one holding
its own collection (the same settings again: nothing to do), and with ``overwrite`` deletes only
what it recorded writing (``genre_fusion.files.owned_outputs``).

Each genre draws its audio from an audio style and its lyrics from a lyric topic. Genres that
share a style have identically distributed audio, genres that share a topic have identically
distributed lyrics, and no two genres share both, so audio alone confuses some pairs, lyrics alone
confuse other pairs and only the two together separate every genre. Genre ``g`` of ``K`` uses
style ``g // 2`` and topic ``((g + 1) % K) // 2`` (``g`` when K = 2), e.g. for K = 6:

=====  ==========  ==================  =====================
g      genre       audio style         lyric topic
=====  ==========  ==================  =====================
0      rock        0 band              0 love
1      metal       0 band              1 street
2      pop         1 synth             1 street
3      electronic  1 synth             2 night
4      hip hop     2 groove            2 night
5      reggae      2 groove            0 love
=====  ==========  ==================  =====================

With an odd K the last genre has a style of its own and closes the cycle of topics with genre 0
(K = 5: styles 0,0,1,1,2 and topics 0,1,1,2,0).

Audio is rendered with numpy: a 16-step drum pattern (kick = decaying sine sweep, snare =
high-passed noise burst plus a tone, hi-hat = short high noise), a bass line following a chord
progression and a melody random walk in the style's scale, each with the style's harmonic
timbre, envelope and drive, plus a little noise. Each song draws its tempo, key, notes and mix
within its style; ``id_metadata.csv`` reports that tempo, key and mode. Lyrics mix stop words,
filler words and the topic's words into tagged sections (``[Verse 1]``, ``[Chorus]``, ...), the
chorus sung two or three times. About 5 % of songs are instrumental (lang ``INTRUMENTAL``, an
empty lyrics file) and about 4 % are in Portuguese (lang ``pt``), whatever their genre.

Artists sing 3 to 8 songs of one main genre; about 30 % of songs list a second genre after it.
Every song has its own generator, seeded from ``seed``: the same seed gives the same collection,
and the healthy songs are the same with or without ``faults``.

Modules: ``styles`` (the genres, the audio styles and the genre -> style / topic design),
``audio`` (rendering a clip), ``lyrics``, ``catalogue`` (artists and songs), ``faults`` (the
broken songs) and ``writer`` (``write_demo_collection``). The word lists and style tables are
data, one JSON file each in ``resources/``.
"""

from data_prep.synth.faults import FAULTS
from data_prep.synth.styles import GENRES, audio_group, lyric_group
from data_prep.synth.writer import CSV_COLUMNS, write_demo_collection

__all__ = ["CSV_COLUMNS", "FAULTS", "GENRES", "audio_group", "lyric_group", "write_demo_collection"]
