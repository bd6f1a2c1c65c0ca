"""The settings of `data_prep build` that decide the content of the shards."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_prep.genre_map import file_sha256, resolve_genre_map
from data_prep.labels import DEFAULT_TOP_GENRES
from genre_fusion.evaluation.protocols import DEFAULT_PROTOCOL
from genre_fusion.features.config import AUDIO_EMBEDDING_FIELDS, FeatureConfig

# The feature numbers the encoders fill in once loaded: not settings (plan.json of earlier versions
# may still list them).
DERIVED_FEATURES = ("embedding_width", *AUDIO_EMBEDDING_FIELDS)


@dataclass(frozen=True)
class BuildConfig:
    """Every setting of `data_prep build` that decides the content of the shards."""

    out: str
    music4all: str | None = None
    manifest: str | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    label_mode: str = "single"
    top_genres: int | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    languages: tuple[str, ...] = ()
    limit: int | None = None
    require_lyrics: bool = False
    shard_size: int = 256
    genre_map: str | None = None  # a shipped map's name or a path (data_prep.genre_map)
    # Recorded in meta.json, not settings: the flags above already decide the content.
    protocol: str = DEFAULT_PROTOCOL
    protocol_overrides: tuple[str, ...] = ()  # options given that differ from the protocol's

    @property
    def genre_count(self) -> int:
        return self.top_genres or DEFAULT_TOP_GENRES[self.label_mode]

    @property
    def source(self) -> str:
        return str(self.music4all or self.manifest)

    def settings(self) -> dict:
        """The settings as plan.json records them: one flat JSON dict keyed by field name (the option
        is `--field-name`), the source path absolute so that any spelling of it resumes, no `out`,
        so that a moved folder resumes too, and none of the numbers the encoders fill in (the text
        embedding width; a pretrained audio encoder's width, patches, patch length and hop, and its
        sample rate), so that a rerun compares what the user chose."""
        not_settings = ("out", "features", "protocol", "protocol_overrides")
        values = {key: value for key, value in asdict(self).items() if key not in not_settings}
        values.update(self.features.to_dict())
        for derived in DERIVED_FEATURES:
            del values[derived]
        if self.features.uses_audio_embeddings:
            del values["sample_rate"]  # the encoder's
        values["top_genres"] = self.genre_count
        for key in ("music4all", "manifest"):
            if values[key]:
                values[key] = str(Path(values[key]).resolve())
        if self.genre_map is None:
            del values["genre_map"]  # as plan.json of earlier versions, which resume
        else:  # an edited map is a changed setting
            path = resolve_genre_map(self.genre_map)
            values["genre_map"] = str(path.resolve())
            values["genre_map_sha256"] = file_sha256(path) if path.is_file() else None
        return json.loads(json.dumps(values))  # tuples as lists, as read back from plan.json
