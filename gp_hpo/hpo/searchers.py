"""Searchers (the book's `Searcher`: `sample_configuration`, `update`) and their Optuna sampler.

`RandomSearcher` draws each hyperparameter independently. `BayesianOptimizationSearcher`
fits our exact GP (`gp_hpo.gp.ExactGP`, Matern 5/2 by default) to the observed
(configuration, error) pairs in the unit cube of `ConfigSpace.to_unit` (log scales
respected, categoricals one-hot) and returns the candidate with the largest expected
improvement, after `initial_random` random configurations. `SearcherSampler` makes any
searcher an Optuna sampler: each new trial's configuration comes from
`sample_configuration`, after the searcher was `update`d with every trial the study
finished since (from any worker), so the study storage is the searcher's memory.
"""
import math

import numpy as np
import optuna

from common.extras import require
from gp_hpo.hpo.space import ConfigSpace



class Searcher:
    """Proposes configurations; learns from the errors they reach."""

    def sample_configuration(self):
        """A configuration dict (hyperparameters only)."""
        raise NotImplementedError

    def update(self, config, error, additional_info=None):
        """Record that `config` reached validation `error` (`additional_info`: e.g. {"epochs": r})."""


class RandomSearcher(Searcher):
    """Independent draws from the space (uniform, log-uniform, integer, categorical)."""

    def __init__(self, space, seed=0):
        self.space = ConfigSpace(space)
        self.rng = np.random.default_rng(seed)

    def sample_configuration(self):
        return self.space.sample(self.rng)


def _normal_cdf(z):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z) / math.sqrt(2.0)))


def expected_improvement(mean, std, best, xi=0.0):
    """EI for minimisation: E[max(best - xi - f, 0)] with f ~ N(mean, std^2), elementwise.

    With z = (best - xi - mean) / std: EI = (best - xi - mean) Phi(z) + std phi(z); where
    std is 0 it is max(best - xi - mean, 0). Shapes (n,) -> (n,).
    """
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    gap = best - xi - mean
    safe = np.where(std > 0, std, 1.0)
    z = gap / safe
    ei = gap * _normal_cdf(z) + safe * np.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
    return np.where(std > 0, np.maximum(ei, 0.0), np.maximum(gap, 0.0))


class BayesianOptimizationSearcher(RandomSearcher):
    """GP-based BO with expected improvement (D2L 19.1/19.3's searcher with our own GP).

    The first `initial_random` configurations are random. Afterwards the GP (kernel
    `kernel`, hyperparameters refitted by marginal likelihood with `restarts` restarts
    on every call) models the errors; EI is maximised over `candidates` random points
    plus Gaussian perturbations (scale 0.05) of the best observed points, and the best
    candidate is decoded back to a configuration. Errors are modelled as they are.
    """

    def __init__(self, space, seed=0, initial_random=5, kernel="matern52", candidates=2000, restarts=1):
        super().__init__(space, seed)
        self.initial_random = initial_random
        self.kernel = kernel
        self.candidates = candidates
        self.restarts = restarts
        self.X, self.y = [], []

    def update(self, config, error, additional_info=None):
        if math.isfinite(error):
            self.X.append(self.space.to_unit(config))
            self.y.append(float(error))

    def _candidates(self):
        random = np.array([self.space.to_unit(self.space.sample(self.rng)) for _ in range(self.candidates)])
        X, y = np.array(self.X), np.array(self.y)
        best = X[np.argsort(y)[:5]]
        local = np.clip(best[self.rng.integers(len(best), size=self.candidates // 4)]
                        + self.rng.normal(0, 0.05, (self.candidates // 4, X.shape[1])), 0, 1)
        # decode and re-encode so integer rounding and one-hot argmax are what the GP sees
        local = np.array([self.space.to_unit(self.space.from_unit(x)) for x in local])
        return np.concatenate([random, local])

    def sample_configuration(self):
        if len(self.y) < self.initial_random:
            return super().sample_configuration()
        from gp_hpo import gp as gp_module
        from gp_hpo import kernels

        X, y = np.array(self.X), np.array(self.y)
        model = gp_module.ExactGP(kernels.parse_kernel(self.kernel))
        model.fit(X, y, restarts=self.restarts, seed=int(self.rng.integers(2 ** 31)))
        cand = self._candidates()
        mean, std = model.predict(cand)
        ei = expected_improvement(np.ravel(mean), np.ravel(std), float(y.min()))
        return self.space.from_unit(cand[int(np.argmax(ei))])


SEARCHERS = {"random": RandomSearcher, "bo": BayesianOptimizationSearcher}
# Optuna's own samplers, for comparisons on the same studies (`--searcher tpe|optuna-gp`)
OPTUNA_SAMPLERS = {"tpe": "TPESampler", "optuna-gp": "GPSampler"}


def make_sampler(name, space, seed, initial_random=5):
    """The study's sampler for a CLI searcher name: ours wrapped in `SearcherSampler`, or Optuna's."""
    if name in OPTUNA_SAMPLERS:
        if name == "optuna-gp":
            require("torch", "gp")  # Optuna's GPSampler runs on PyTorch
        cls = getattr(optuna.samplers, OPTUNA_SAMPLERS[name])
        return cls(seed=int(seed), n_startup_trials=int(initial_random))
    options = {"initial_random": initial_random} if name == "bo" else {}
    return SearcherSampler(space, SEARCHERS[name](space, seed, **options), seed)


def trial_error(trial):
    """A finished trial's error: its value, else its last reported error (pruned trials); None if none."""
    if trial.value is not None:
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


class SearcherSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler whose configurations come from a `Searcher`.

    The relative search space is the whole `space`. Before each new configuration the
    searcher is `update`d with every trial finished since (from any worker; a pruned
    trial counts with its last reported error). Trials carrying the user attribute
    `promoted_from` (successive-halving promotions) get that trial's parameters instead.
    The searcher's generator is reseeded from (`seed`, trial number) for each trial, so a
    trial's draw does not depend on which worker runs it, and a resumed study does not
    repeat the draws it already made.
    """

    def __init__(self, space, searcher, seed=0):
        self.space = ConfigSpace(space)
        self.searcher = searcher
        self.seed = int(seed)
        self._seen = set()
        self._fallback = optuna.samplers.RandomSampler(seed=self.seed)

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def _update_from(self, study):
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for t in study.get_trials(deepcopy=False, states=states):
            if t.number in self._seen:
                continue
            self._seen.add(t.number)
            error = trial_error(t)
            if error is not None and set(self.space.names) <= set(t.params):
                self.searcher.update({n: t.params[n] for n in self.space.names}, error,
                                     {"epochs": t.user_attrs.get("epochs", len(t.intermediate_values))})

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        promoted = trial.user_attrs.get("promoted_from")
        if promoted is not None:
            return dict(study.get_trials(deepcopy=False)[promoted].params)
        self._update_from(study)
        self.searcher.rng = np.random.default_rng([self.seed, trial.number])
        return self.searcher.sample_configuration()

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
