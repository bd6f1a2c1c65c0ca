"""Feature settings shared by preparation, training and serving.

One `FeatureConfig` travels from `data_prep build` into `meta.json`, from there into every run's
`config.json` and into the exported SavedModel, so the same numbers describe every stage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DEFAULT_SAMPLE_RATE = 22_050
DEFAULT_CLIP_SECONDS = 30.0
DEFAULT_N_FFT = 2048
DEFAULT_HOP_LENGTH = 512
DEFAULT_MEL_BINS = 128
DEFAULT_MAX_TOKENS = 200
LEARNED_TEXT_ENCODER = "learned"
POSITIVE_FIELDS = ("sample_rate", "clip_seconds", "n_fft", "hop_length", "mel_bins", "max_tokens")


@dataclass(frozen=True)
class FeatureConfig:
    """How a song becomes model input.

    `text_encoder` is `learned` (the shards hold principal-word text only; the model learns its
    own embedding) or a TF Hub handle / local module path whose token vectors of width
    `embedding_width` (from output `text_output_key`) are stored in the shards.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    n_fft: int = DEFAULT_N_FFT
    hop_length: int = DEFAULT_HOP_LENGTH
    mel_bins: int = DEFAULT_MEL_BINS
    max_tokens: int = DEFAULT_MAX_TOKENS
    text_encoder: str = LEARNED_TEXT_ENCODER
    text_output_key: str = "elmo"
    embedding_width: int = 0

    def __post_init__(self):
        """Raises ValueError for a value no stage can use, naming it as its option (`--clip-seconds`)."""
        for name in POSITIVE_FIELDS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"--hop-length {self.hop_length} is larger than --n-fft {self.n_fft}: "
                "the frames would skip samples; use a hop of at most the FFT size"
            )
        if self.mel_bins > self.n_fft // 2 + 1:
            raise ValueError(
                f"--mel-bins {self.mel_bins} is more than the {self.n_fft // 2 + 1} frequency bins of "
                f"--n-fft {self.n_fft}: use fewer mel bins or a larger FFT"
            )

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def frames(self) -> int:
        """Log-mel frames of one clip (centred STFT frames, as `LogMelSpectrogram` computes)."""
        return 1 + self.clip_samples // self.hop_length

    @property
    def uses_embeddings(self) -> bool:
        return self.text_encoder != LEARNED_TEXT_ENCODER

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FeatureConfig:
        return cls(**values)
