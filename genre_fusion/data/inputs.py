"""The names of the model's inputs, per modality: the contract between the shards' input pipeline,
the model and the export.

- ``log_mel`` float32 [batch, mel_bins, frames] (audio);
- with the learned text encoder ``words`` string [batch] (principal words, "" without lyrics);
- with a hub text encoder ``embeddings`` float32 [batch, max_tokens, width] (zero-padded) and
  ``tokens`` int32 [batch] (valid rows, 0 without lyrics).
"""

from __future__ import annotations

from genre_fusion.features.config import FeatureConfig

AUDIO = "audio"
LYRICS = "lyrics"
MODALITIES = (AUDIO, LYRICS)

LOG_MEL_INPUT = "log_mel"
WORDS_INPUT = "words"
EMBEDDINGS_INPUT = "embeddings"
TOKENS_INPUT = "tokens"


def input_names(modalities: tuple[str, ...], features: FeatureConfig) -> tuple[str, ...]:
    """The model's input names for these modalities and this text encoder."""
    names = []
    if AUDIO in modalities:
        names.append(LOG_MEL_INPUT)
    if LYRICS in modalities:
        names += [EMBEDDINGS_INPUT, TOKENS_INPUT] if features.uses_embeddings else [WORDS_INPUT]
    return tuple(names)

