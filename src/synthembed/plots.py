"""Figures for the Snakemake report and `dvc plots`: small PNGs drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthembed.io import atomic_path


def histogram_png(groups: dict[str, list[float]], xlabel: str, path: str | Path, bins: int = 40) -> None:
    """Overlaid histograms of several groups of values (e.g. kept vs each rejection reason)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    values = [v for group in groups.values() for v in group]
    edges = np.histogram_bin_edges(values, bins=bins) if values else bins  # shared, so groups compare
    for label, group in groups.items():
        if group:
            axes.hist(group, bins=edges, alpha=0.55, label=f"{label} ({len(group)})")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("rows")
    if values:
        axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
