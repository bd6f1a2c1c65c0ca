"""musicnn as a pretrained audio encoder (`genre_fusion.encoders.audio`): `MusicnnEmbedding`, the
frozen network with one output picked, and `MusicnnEncoder`, its `AudioEncoder`."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from genre_fusion.encoders.audio import (
    DEFAULT_BATCH_SIZE,
    MUSICNN_DEFAULT_OUTPUT,
    MUSICNN_OUTPUTS,
    MUSICNN_POOLED,
    OUTPUT_KEY_OPTION,
    AudioEncoder,
    AudioEncoderSpec,
)
from genre_fusion.encoders.musicnn import Musicnn, load_musicnn
from genre_fusion.encoders.musicnn_log_mel import FFT_HOP, SAMPLE_RATE, MusicnnLogMelPatches


def _musicnn_layer(model: keras.Model, kind: type[keras.layers.Layer]):
    """The one layer of `kind` in a `load_musicnn` model: `MusicnnLogMelPatches` or `Musicnn`."""
    (layer,) = (layer for layer in model.layers if isinstance(layer, kind))
    return layer


@keras.saving.register_keras_serializable(package="genre_fusion")
class MusicnnEmbedding(keras.layers.Layer):
    """musicnn (`load_musicnn`) frozen, in inference mode, one output picked.

    Input: waveforms float32 [batch, samples], mono, 16 kHz. Output: float32 [batch, patches,
    width], `output_key` one of `MUSICNN_OUTPUTS` (``pooled``: ``mean_pool`` then ``max_pool``).
    `encoder`: ``musicnn-msd`` or ``musicnn-mtt``; the weights are read again from the musicnn
    package when the layer is rebuilt from its config."""

    def __init__(self, encoder: str, output_key: str = MUSICNN_DEFAULT_OUTPUT, **kwargs):
        super().__init__(**kwargs)
        if output_key not in MUSICNN_OUTPUTS:
            raise ValueError(
                f"musicnn has no output {output_key!r}; its outputs: {', '.join(MUSICNN_OUTPUTS)} "
                f"(pass one with {OUTPUT_KEY_OPTION})"
            )
        self.encoder = encoder
        self.output_key = output_key
        self.musicnn = load_musicnn(encoder)
        self.musicnn.trainable = False  # its batch norms too: no training of musicnn's weights
        self.trainable = False
        network = _musicnn_layer(self.musicnn, Musicnn)
        pool = network.midend_width
        widths = {
            "penultimate": network.backend_units,
            "mean_pool": pool,
            "max_pool": pool,
            MUSICNN_POOLED: 2 * pool,
        }
        self.width = widths[output_key]

    def call(self, waveforms):
        outputs = self.musicnn(waveforms, training=False)
        if self.output_key == MUSICNN_POOLED:
            return ops.concatenate([outputs["mean_pool"], outputs["max_pool"]], axis=-1)
        return outputs[self.output_key]

    def compute_output_shape(self, input_shape):
        patches = _musicnn_layer(self.musicnn, MusicnnLogMelPatches).compute_output_shape(input_shape)[1]
        return (input_shape[0], patches, self.width)

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder, "output_key": self.output_key}


class MusicnnEncoder(AudioEncoder):
    """musicnn-msd or musicnn-mtt (`MusicnnEmbedding`)."""

    def __init__(self, name: str, output_key: str, batch_size: int = DEFAULT_BATCH_SIZE):
        layer = MusicnnEmbedding(name, output_key)
        log_mel = _musicnn_layer(layer.musicnn, MusicnnLogMelPatches)
        spec = AudioEncoderSpec(
            name=name,
            sample_rate=SAMPLE_RATE,
            output_key=output_key,
            width=layer.width,
            patch_seconds=log_mel.patch_frames * FFT_HOP / SAMPLE_RATE,
            hop_seconds=log_mel.patch_hop * FFT_HOP / SAMPLE_RATE,
            # Frames are centred (frame i at sample i * FFT_HOP): a patch of patch_frames frames
            # needs (patch_frames - 1) hops of samples.
            first_patch_samples=(log_mel.patch_frames - 1) * FFT_HOP,
        )
        super().__init__(spec, layer, batch_size)

    def export_layer(self, workdir: Path) -> keras.layers.Layer:
        """The encoder's own layer: nothing is written to `workdir`."""
        return self.layer
