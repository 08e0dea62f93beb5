"""Figures of the rl domain: a grid world's value function with its policy, return curves."""
import numpy as np

from common.plots import plt, save_figure

# FrozenLake actions: 0 left, 1 down, 2 right, 3 up; arrow (dx, dy) in image coordinates (y grows downwards,
# as imshow draws row 0 at the top).
ARROWS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], float)


def value_policy_map(values, policy, desc, path, title=""):
    """Heat map of state values (n_states,) on a grid world with the greedy policy as arrows.

    `desc` is the map as rows of letters (S start, F frozen, H hole, G goal); holes and
    the goal get no arrow. Saved as a PNG at `path`.
    """
    desc = np.asarray([list(row) for row in desc])
    rows, cols = desc.shape
    grid = np.asarray(values, float).reshape(rows, cols)
    size = max(3.0, 0.6 * max(rows, cols))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(grid, cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="V(s)")
    y, x = np.divmod(np.arange(rows * cols), cols)
    moves = ~np.isin(desc.ravel(), ["H", "G"])
    d = ARROWS[np.asarray(policy)] * 0.3
    ax.quiver(x[moves], y[moves], d[moves, 0], d[moves, 1], color="white", scale=1, scale_units="xy",
              angles="xy", width=0.006 * 8 / max(rows, cols))
    for (r, c), letter in np.ndenumerate(desc):
        if letter in "SHG":
            ax.text(c - 0.45, r - 0.45, letter, ha="left", va="top", color="red" if letter == "H" else "orange",
                    fontsize=max(5, 12 - max(rows, cols) // 3), fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return save_figure(fig, path)


def curve(values, path, xlabel, ylabel, title="", smooth=1):
    """Line plot of a 1-D series (with an optional moving average of width `smooth`)."""
    values = np.asarray(values, float)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(np.arange(1, len(values) + 1), values, alpha=0.4 if smooth > 1 else 1.0, label=ylabel)
    if smooth > 1 and len(values) >= smooth:
        avg = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(smooth, len(values) + 1), avg, label=f"{ylabel} (mean of {smooth})")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save_figure(fig, path)


def returns_histogram(returns, path, title=""):
    """Histogram of per-episode returns."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(np.asarray(returns, float), bins=20)
    ax.set_xlabel("return")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    return save_figure(fig, path)
