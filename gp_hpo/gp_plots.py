"""Figures of a fitted Gaussian process: the fit with its bands, and function samples."""
import numpy as np

from common.plots import plt, save_figure

Z95 = 1.959963984540054


def plot_fit(gp, X, y, path, x_names=("x",), y_name="y", truth=None, title=""):
    """fit.png. One input: the data, the posterior mean, the 95% epistemic band (of f) and the
    95% predictive band (of a new y, with noise), and `truth(x)` when given. Several inputs:
    observed y against the posterior mean at the training points with 95% predictive bars."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if X.shape[1] == 1:
        lo, hi = X[:, 0].min(), X[:, 0].max()
        pad = 0.05 * (hi - lo or 1.0)
        grid = np.linspace(lo - pad, hi + pad, 400)
        mean, f_std = gp.predict(grid[:, None])
        _, std = gp.predict(grid[:, None], include_noise=True)
        ax.fill_between(grid, mean - Z95 * std, mean + Z95 * std, color="C0", alpha=0.15, label="95% predictive")
        ax.fill_between(grid, mean - Z95 * f_std, mean + Z95 * f_std, color="C0", alpha=0.3, label="95% epistemic")
        ax.plot(grid, mean, color="C0", label="posterior mean")
        if truth is not None:
            ax.plot(grid, truth(grid), "k--", lw=1, label="true function")
        ax.plot(X[:, 0], y, "o", ms=3, color="C3", label="data")
        ax.set_xlabel(x_names[0])
        ax.set_ylabel(y_name)
    else:
        mean, std = gp.predict(X, include_noise=True)
        ax.errorbar(y, mean, yerr=Z95 * std, fmt="o", ms=3, alpha=0.6, label="mean, 95% predictive")
        ax.plot([y.min(), y.max()], [y.min(), y.max()], "k--", lw=1)
        ax.set_xlabel(f"observed {y_name}")
        ax.set_ylabel(f"predicted {y_name}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_samples(gp, path, n_samples=5, seed=0):
    """samples.png: functions drawn from the prior of the fitted kernel and from the posterior (one input)."""
    from gp_hpo.kernels import sample_prior

    lo, hi = gp.X[:, 0].min(), gp.X[:, 0].max()
    grid = np.linspace(lo, hi, 200)[:, None]
    hyper = {k: v for k, v in gp.hyperparameters().items() if k != "noise_std"}
    prior = sample_prior(gp.kernel, grid, n_samples=n_samples, seed=seed, hyperparameters=hyper) + gp.y_mean
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    axes[0].plot(grid[:, 0], prior.T, lw=1)
    axes[0].set_title("prior samples (fitted kernel)", fontsize=9)
    axes[1].plot(grid[:, 0], gp.sample_posterior(grid, n_samples, seed).T, lw=1)
    axes[1].plot(gp.X[:, 0], gp.y, "o", ms=3, color="k")
    axes[1].set_title("posterior samples", fontsize=9)
    return save_figure(fig, path)


def plot_forecast(gp, path, X_new, y_new=None, x_name="x", y_name="y", title=""):
    """forecast.png (one input): the training data, the new points X_new (m, 1) with their y_new when
    given, and the posterior mean with its 95% predictive band over the training and new inputs."""
    x_all = np.concatenate([gp.X[:, 0], X_new[:, 0]])
    lo, hi = x_all.min(), x_all.max()
    grid = np.linspace(lo, hi, 800)
    mean, std = gp.predict(grid[:, None], include_noise=True)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.fill_between(grid, mean - Z95 * std, mean + Z95 * std, color="C0", alpha=0.25, label="95% predictive")
    ax.plot(grid, mean, color="C0", lw=1, label="posterior mean")
    ax.plot(gp.X[:, 0], gp.y, ".", ms=3, color="k", label="training data")
    if y_new is not None:
        ax.plot(X_new[:, 0], y_new, ".", ms=3, color="C3", label="new data")
    else:
        ax.plot(X_new[:, 0], gp.predict(X_new)[0], "x", ms=4, color="C3", label="predicted points")
    ax.axvline(gp.X[:, 0].max(), color="grey", lw=0.8, ls=":")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
