"""The names of the model's inputs, per modality: the contract between the shards' input pipeline,
the model and the export.

- audio: ``log_mel`` float32 [batch, mel_bins, frames]; or, for shards of a pretrained audio
  encoder, ``audio_embeddings`` float32 [batch, audio_patches, audio_embedding_width]
  (zero-padded) and ``audio_patches`` int32 [batch] (valid patches);
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
AUDIO_EMBEDDINGS_INPUT = "audio_embeddings"
AUDIO_PATCHES_INPUT = "audio_patches"
WORDS_INPUT = "words"
EMBEDDINGS_INPUT = "embeddings"
TOKENS_INPUT = "tokens"


def input_names(modalities: tuple[str, ...], features: FeatureConfig) -> tuple[str, ...]:
    """The model's input names for these modalities and these audio and text encoders."""
    names = []
    if AUDIO in modalities:
        embeddings = features.uses_audio_embeddings
        names += [AUDIO_EMBEDDINGS_INPUT, AUDIO_PATCHES_INPUT] if embeddings else [LOG_MEL_INPUT]
    if LYRICS in modalities:
        names += [EMBEDDINGS_INPUT, TOKENS_INPUT] if features.uses_embeddings else [WORDS_INPUT]
    return tuple(names)
