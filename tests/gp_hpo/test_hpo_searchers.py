import math
import statistics

import numpy as np
import optuna
import pytest
from scipy import stats

from gp_hpo.hpo.objectives import branin_value
from gp_hpo.hpo.searchers import (BayesianOptimizationSearcher, RandomSearcher, SearcherSampler,
                                  expected_improvement)
from gp_hpo.hpo.space import ConfigSpace

BRANIN = {"x0": {"type": "uniform", "low": -5.0, "high": 10.0}, "x1": {"type": "uniform", "low": 0.0, "high": 15.0}}


def test_expected_improvement_by_hand():
    # best 0.3, mean 0.5, std 0.2: z = -1, EI = -0.2 Phi(-1) + 0.2 phi(-1) = -0.0317311 + 0.0483941
    assert expected_improvement([0.5], [0.2], 0.3)[0] == pytest.approx(0.0166630, abs=1e-6)
    mean, std, best = np.array([0.1, 0.3, 2.0, 0.2]), np.array([0.5, 1.0, 0.1, 0.0]), 0.25
    z = (best - mean) / np.where(std > 0, std, 1)
    reference = (best - mean) * stats.norm.cdf(z) + std * stats.norm.pdf(z)
    reference[3] = 0.05  # no uncertainty: the plain improvement
    np.testing.assert_allclose(expected_improvement(mean, std, best), reference, rtol=1e-10, atol=1e-12)
    assert expected_improvement([0.5], [0.0], 0.3)[0] == 0.0  # no uncertainty, no improvement


def run_searcher(searcher, budget):
    best = math.inf
    for _ in range(budget):
        config = searcher.sample_configuration()
        error = branin_value(config["x0"], config["x1"])
        searcher.update(config, error)
        best = min(best, error)
    return best


def test_bo_beats_random_search_on_branin():
    # 15 evaluations (5 random first), 3 seeds: median best error of BO below random search's.
    bo = [run_searcher(BayesianOptimizationSearcher(BRANIN, seed, initial_random=5, candidates=1000), 15)
          for seed in range(3)]
    rs = [run_searcher(RandomSearcher(BRANIN, seed), 15) for seed in range(3)]
    assert statistics.median(bo) < statistics.median(rs)
    assert statistics.median(bo) < 1.5  # the minimum is 0.398; random search's median here is several units


def test_bo_respects_space_types():
    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0}, "n": {"type": "int", "low": 1, "high": 5},
             "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]}}
    searcher = BayesianOptimizationSearcher(space, 0, initial_random=3, candidates=300)
    for _ in range(6):
        config = searcher.sample_configuration()
        assert 1e-4 <= config["lr"] <= 1.0 and config["n"] in range(1, 6) and config["act"] in ("relu", "tanh", "gelu")
        searcher.update(config, (math.log10(config["lr"]) + 2) ** 2 + (config["act"] != "tanh"))
    assert len(searcher.y) == 6 and searcher.X[0].shape == (5,)


def test_sampler_draws_from_searcher_and_feeds_it_the_study():
    space = ConfigSpace(BRANIN)
    searcher = RandomSearcher(space, 0)
    study = optuna.create_study(sampler=SearcherSampler(space, searcher, seed=7))
    seen = []
    searcher.update = lambda config, error, info=None: seen.append((config, error))
    for i in range(4):
        trial = study.ask()
        config = {"x0": trial.suggest_float("x0", -5, 10), "x1": trial.suggest_float("x1", 0, 15)}
        # the draw depends only on (seed, trial number), not on the worker that asks
        assert config == space.sample(np.random.default_rng([7, i]))
        study.tell(trial, branin_value(**config))
    assert [e for _, e in seen] == [t.value for t in study.trials[:3]]  # updated before each new draw
