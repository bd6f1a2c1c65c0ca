"""The models a comparison trains: single-modality baselines and each fusion, by short name."""

from __future__ import annotations

from dataclasses import dataclass

from genre_fusion.evaluation.protocols import AUDIO, FUSED, LYRICS
from genre_fusion.model.config import FUSIONS

DEFAULT_MODELS = ("audio", "lyrics", *FUSIONS)


@dataclass(frozen=True)
class ComparedModel:
    """`name` (as `--models` spells it), `label` (for tables), `kind` (fused, audio or lyrics: the
    key of a protocol's reported figures) and the `train` flags that make it."""

    name: str
    label: str
    kind: str
    modalities: str
    fusion: str

    def train_flags(self) -> list[str]:
        return ["--modalities", self.modalities, "--fusion", self.fusion]


def _model(name: str) -> ComparedModel:
    if name == AUDIO:
        return ComparedModel(name, "audio only", AUDIO, "audio", "concat")
    if name == LYRICS:
        return ComparedModel(name, "lyrics only", LYRICS, "lyrics", "concat")
    return ComparedModel(name, f"fused ({name})", FUSED, "audio,lyrics", name)


def parse_models(text: str) -> list[ComparedModel]:
    """'audio,concat,gated' -> the models in that order; `ValueError` naming an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DEFAULT_MODELS]
    if unknown or not names:
        raise ValueError(
            f"--models {text!r}: unknown {', '.join(unknown) or 'empty list'}; choose from "
            f"{', '.join(DEFAULT_MODELS)} (audio only, lyrics only, and each fusion)"
        )
    return [_model(name) for name in dict.fromkeys(names)]
