"""PNG figures (matplotlib with the Agg backend), written atomically."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.files import atomic_path  # noqa: E402


def save_figure(fig, path, dpi=100):
    """Save `fig` as PNG at `path` (temporary file, then rename) and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def learning_curves(history, path, keys=None):
    """Plot per-epoch metrics (a list of dicts with an `epoch` key), one panel per metric.

    A metric and its `val_` twin share a panel.
    """
    keys = keys or sorted({k for h in history for k, v in h.items()
                           if isinstance(v, (int, float)) and k not in ("epoch", "time_s")
                           and not k.startswith("val_")})
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes[0], keys):
        for name in (key, f"val_{key}"):
            values = [h.get(name, np.nan) for h in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    return save_figure(fig, path)
