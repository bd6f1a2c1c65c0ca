"""Published evaluation protocols on Music4All, as named presets: what to build, and what was reported.

A protocol fixes what decides the comparison with a paper: the songs (languages, lyrics required),
the label space (label mode, number of genres, a genre map from Last.fm's fine genres to coarse
ones) and the split fractions. `python -m data_prep build --protocol NAME` applies them (flags
still override, and meta.json records both the protocol and the overrides);
`python -m genre_fusion.compare` puts a paper's reported figures beside this project's, on shards
that carry its protocol. Every split here is grouped by artist, which is stricter than a random
song split: where a paper split by song its figures are, if anything, optimistic beside ours.

Reported figures are keyed by the comparison's model kinds (`fused`, `audio`, `lyrics`) and by the
metric of `genre_fusion.evaluation.metrics` that the paper's figure corresponds to
(`PAPER_METRIC_READING` says which paper name reads as which metric, and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PROTOCOL = "default"
FUSED, AUDIO, LYRICS = "fused", "audio", "lyrics"


@dataclass(frozen=True)
class Protocol:
    """One published (or the project's own) protocol: build settings plus the paper's figures.

    `genre_map` names a CSV of `data_prep/genre_maps/` (None: the fine Last.fm genres are the
    labels); `reported` is {model kind: {metric key: value}}; `metric_reading` is {the paper's
    metric name: the metric key it is read as}.
    """

    name: str
    source: str
    songs: str
    label_mode: str = "single"
    top_genres: int | None = None
    languages: tuple[str, ...] = ()
    require_lyrics: bool = False
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    genre_map: str | None = None
    genre_map_origin: str = ""
    reported: dict[str, dict[str, float]] = field(default_factory=dict)
    metric_reading: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def build_settings(self) -> dict:
        """The `data_prep build` settings this protocol fixes, keyed by option name (no dashes)."""
        return {
            "label_mode": self.label_mode,
            "top_genres": self.top_genres,
            "languages": self.languages,
            "require_lyrics": self.require_lyrics,
            "split": self.split,
            "genre_map": self.genre_map,
        }


# Multi-label "accuracy" and "F" in the genre-classification literature are example-based: per song,
# |true ∩ predicted| / |true ∪ predicted| and the F1 of the song's two sets, averaged over songs
# (Godbole & Sarawagi, PAKDD 2004; Zhang & Zhou, "A review on multi-label learning algorithms",
# IEEE TKDE 2014, section 2.2.1).
_MULTI_LABEL_READING = {"accuracy": "example_accuracy", "F": "example_f1"}
_SINGLE_LABEL_READING = {"accuracy": "accuracy"}

PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol(
            name=DEFAULT_PROTOCOL,
            source="genre-fusion's own",
            songs="every song with a genre (all languages; songs without lyrics kept)",
            notes="single label: a song's first listed genre among the 10 most frequent; 80/10/10",
        ),
        Protocol(
            name="ru2023",
            source="Ru et al., ICASSP 2023",
            songs="43,650 English songs with lyrics and every field present",
            label_mode="multi",
            top_genres=87,
            languages=("en",),
            require_lyrics=True,
            split=(0.7, 0.1, 0.2),
            genre_map_origin="none: the 87 most frequent fine Last.fm genres are the labels",
            reported={
                FUSED: {"example_accuracy": 0.456, "example_f1": 0.534},
                AUDIO: {"example_accuracy": 0.354, "example_f1": 0.419},
            },
            metric_reading=_MULTI_LABEL_READING,
            notes="'complete rows' is approximated by --require-lyrics; the paper's own song list is not "
            "published, so the song count differs",
        ),
        Protocol(
            name="pandeya2021",
            source="Pandeya et al., ICTC 2021",
            songs="81,773 English songs",
            top_genres=44,
            languages=("en",),
            genre_map="coarse44.csv",
            genre_map_origin="ours: the paper's 44 coarse genres are not published; coarse44.csv groups "
            "Last.fm's fine genres into 44 families by their parent genre",
            reported={FUSED: {"accuracy": 0.422}, AUDIO: {"accuracy": 0.403}, LYRICS: {"accuracy": 0.278}},
            metric_reading=_SINGLE_LABEL_READING,
        ),
        Protocol(
            name="musiclime2025",
            source="Sotirou et al. (MusicLIME), ICASSP 2025",
            songs="about 60k English songs with lyrics",
            top_genres=9,
            languages=("en",),
            require_lyrics=True,
            genre_map="musiclime9.csv",
            genre_map_origin="from the authors' public notebook (github.com/IamTheo2000/MusicLIME, "
            "'Dataset Related'): its genre lists as fine,coarse rows; rules that depend on a song's other "
            "genres are reduced to their plain case, and its 12 groups are merged into the paper's 9 "
            "(metal and hardcore: heavy music; R&B, jazz/blues and Jamaican: rhythm music) by our reading",
            reported={FUSED: {"accuracy": 0.573}, AUDIO: {"accuracy": 0.538}, LYRICS: {"accuracy": 0.451}},
            metric_reading=_SINGLE_LABEL_READING,
            notes="artist-disjoint as every split here; the paper labels a song by its first listed genre "
            "only, this build by its first listed genre that the map places",
        ),
    )
}


class UnknownProtocol(ValueError):
    """A protocol name that is not in `PROTOCOLS`."""


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; raises `UnknownProtocol` listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(
            f"--protocol {name!r}: unknown; choose from {', '.join(PROTOCOLS)} "
            "(`python -m data_prep build --protocol list` describes them)"
        ) from None


def describe_protocols() -> str:
    """Every protocol as text for `--protocol list`: source, songs, settings, genre map, figures."""
    blocks = []
    for protocol in PROTOCOLS.values():
        split = ",".join(f"{fraction:g}" for fraction in protocol.split)
        lines = [
            f"{protocol.name}: {protocol.source}",
            f"  songs      {protocol.songs}",
            f"  labels     {protocol.label_mode}, top {protocol.top_genres or '10 (multi: 50)'} genres",
            f"  split      {split}, grouped by artist",
            f"  languages  {','.join(protocol.languages) or 'all'}"
            + ("; lyrics required" if protocol.require_lyrics else ""),
        ]
        if protocol.genre_map or protocol.genre_map_origin:
            lines.append(f"  genre map  {protocol.genre_map or '-'} ({protocol.genre_map_origin})")
        for model, figures in protocol.reported.items():
            named = ", ".join(f"{metric} {value:.3f}" for metric, value in figures.items())
            lines.append(f"  reported   {model}: {named}")
        if protocol.metric_reading:
            reading = ", ".join(f"'{paper}' = {ours}" for paper, ours in protocol.metric_reading.items())
            lines.append(f"  read as    {reading}")
        if protocol.notes:
            lines.append(f"  note       {protocol.notes}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
