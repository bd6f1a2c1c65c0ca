"""Feature settings shared by preparation, training and serving.

One `FeatureConfig` travels from `data_prep build` into `meta.json`, from there into every run's
`config.json` and into the exported SavedModel, so the same numbers describe every stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_SAMPLE_RATE = 22_050
DEFAULT_CLIP_SECONDS = 30.0
DEFAULT_N_FFT = 2048
DEFAULT_HOP_LENGTH = 512
DEFAULT_MEL_BINS = 128
DEFAULT_MAX_TOKENS = 200
LEARNED_TEXT_ENCODER = "learned"


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
