"""The figure of an `Explanation`: modality bars, lyric-word bars, drop per time window over the
waveform's envelope.

Built with `matplotlib.figure.Figure` on an Agg canvas, never through `pyplot` (as
`genre_fusion.evaluation.plots`): no display, no global figure registry, no MPLBACKEND dependence.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genre_fusion.serving.explanation import NO_EFFECT, Explanation

DPI = 120
SUPPORTS_COLOUR = "tab:green"
OPPOSES_COLOUR = "tab:red"
NEUTRAL_COLOUR = "tab:gray"
ENVELOPE_COLOUR = "lightsteelblue"
ENVELOPE_POINTS = 2000  # enough for a smooth outline at the figure's width, whatever the clip length


def _drop_colour(drop: float) -> str:
    return SUPPORTS_COLOUR if drop > 0 else OPPOSES_COLOUR if drop < 0 else NEUTRAL_COLOUR


def explanation_png(
    explanation: Explanation, waveform: np.ndarray, sample_rate: int, top_words: int
) -> bytes:
    """The PNG of `explanation` for the song `waveform` float32 [samples] at `sample_rate`,
    showing up to `top_words` supporting and as many opposing words."""
    genre = explanation.predicted_genre
    figure = Figure(figsize=(10, 11), layout="constrained")
    modality_axes, word_axes, time_axes = figure.subplots(3, 1, height_ratios=[1, 1.6, 1.4])
    figure.suptitle(f"Why {genre} (p = {explanation.probabilities[explanation.predicted]:.3f})")

    modalities = explanation.modalities
    labels = ["both", "lyrics hidden", "audio hidden"]
    values = [modalities.with_both, modalities.without_lyrics, modalities.without_audio]
    if modalities.without_lyrics is None:  # no lyrics given: there is nothing to hide
        del labels[1], values[1]
    bars = modality_axes.barh(labels, values, color=[NEUTRAL_COLOUR, "tab:orange", "tab:blue"][: len(labels)])
    modality_axes.bar_label(bars, fmt="%.3f", padding=3)
    modality_axes.set_xlim(0, 1.1)
    modality_axes.invert_yaxis()
    modality_axes.set_xlabel(f"probability of {genre}")
    shares = modalities.shares
    modality_axes.set_title(
        "modalities: no lyrics given"
        if shares is None
        else f"modalities: share audio {shares[0]:.0%}, lyrics {shares[1]:.0%}"
        + (" (neither drops: even split)" if modalities.neither_drops else "")
    )

    words = explanation.supporting_words(top_words) + explanation.opposing_words(top_words)[::-1]
    if words:
        drops = [effect.drop for effect in words]
        word_axes.barh([effect.word for effect in words], drops, color=[_drop_colour(d) for d in drops])
        word_axes.invert_yaxis()
        word_axes.axvline(0, color="black", linewidth=0.8)
    else:
        word_axes.text(0.5, 0.5, "no lyric word changes the prediction", ha="center", va="center")
        word_axes.set_yticks([])
    word_axes.set_xlabel(f"drop of p({genre}) when the word is deleted")
    word_axes.set_title("lyric words: green supports, red opposes")

    envelope_axes = time_axes.twinx()
    edges = np.linspace(0, len(waveform), min(ENVELOPE_POINTS, len(waveform)) + 1).astype(int)
    peaks = np.maximum.reduceat(np.abs(waveform), edges[:-1])
    envelope_axes.fill_between(
        edges / sample_rate, np.append(peaks, peaks[-1]), color=ENVELOPE_COLOUR, step="post", linewidth=0
    )
    envelope_axes.set_ylabel("|waveform|")
    envelope_axes.set_ylim(bottom=0)
    time_axes.set_zorder(envelope_axes.get_zorder() + 1)  # the drops drawn over the envelope
    time_axes.patch.set_visible(False)
    windows = explanation.windows
    drops = [window.drop for window in windows]
    time_axes.bar(
        [window.start_seconds for window in windows],
        drops,
        width=[window.end_seconds - window.start_seconds for window in windows],
        align="edge",
        color=[_drop_colour(d) for d in drops],
        alpha=0.8,
        edgecolor="white",
    )
    time_axes.axhline(0, color="black", linewidth=0.8)
    # Symmetric about 0, so support and opposition read at the same scale.
    extent = max(max(abs(drop) for drop in drops), NO_EFFECT) * 1.1
    time_axes.set_ylim(-extent, extent)
    time_axes.set_xlim(0, len(waveform) / sample_rate)
    time_axes.set_xlabel("time (s)")
    time_axes.set_ylabel(f"drop of p({genre})")
    time_axes.set_title("time windows silenced one at a time")

    FigureCanvasAgg(figure)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=DPI)
    return png.getvalue()
