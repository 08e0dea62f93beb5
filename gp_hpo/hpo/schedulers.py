"""Schedulers (the book's `Scheduler`: `suggest`, `update`) on an Optuna study.

A scheduler decides what each trial runs: `suggest(study, trial)` returns the
configuration (hyperparameters from the study's sampler, i.e. our searcher, plus
`max_epochs`), or None when the trial has nothing to do. Its memory is the study
storage, so any number of workers can share it. Early stopping is an Optuna pruner
(`pruner()`), consulted on every `report`.

- `FIFOScheduler`: every trial trains for `r_max` epochs.
- `SuccessiveHalvingScheduler` (synchronous, D2L 19.4): rounds of n_0 = eta^K trials at
  r_min epochs, then the best 1/eta retrained at eta times the epochs, ..., up to r_max.
  A round is laid out in advance as Optuna WAITING trials (one per slot of each rung;
  the first round by `prime`, each next one by the worker that takes the previous
  round's first slot); a rung-k slot waits until rung k-1 of its round has finished,
  then runs the configuration ranked at its index (user attribute `promoted_from`),
  training from scratch as the book does. Popping a WAITING trial is atomic in
  Optuna's storages, so several workers never run the same slot nor queue a round twice.
- `HyperbandScheduler`: successive-halving rounds cycling through Hyperband's brackets.
- `ASHAScheduler` (asynchronous successive halving, stopping variant): FIFO plus the
  `ASHAPruner`, which stops a trial at rung r_k = r_min eta^k < r_max unless its error
  is among the best 1/eta of all errors reported at r_k so far.
"""
import math
import time

import optuna

from common.errors import UsageError
from gp_hpo.hpo.space import ConfigSpace

TrialState = optuna.trial.TrialState


def suggest_config(trial, space):
    """The hyperparameters of `trial`, drawn through the study's sampler (`trial.suggest_*`)."""
    config = {}
    for p in space.params:
        if p.type == "categorical":
            config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.type == "int":
            config[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
        else:
            config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return config


def rung_levels(r_min, r_max, eta):
    """The book's rungs: r_min eta^k for k = 0..K with K = floor(log_eta(r_max / r_min)), then r_max."""
    if not 1 <= r_min <= r_max or eta < 2:
        raise UsageError(f"successive halving needs 1 <= --min-epochs <= --max-epochs and --eta >= 2, "
                         f"got r_min={r_min}, r_max={r_max}, eta={eta}")
    K = int(math.floor(math.log(r_max / r_min) / math.log(eta) + 1e-9))
    levels = [r_min * eta ** k for k in range(K + 1)]
    if levels[-1] != r_max:
        levels.append(r_max)
    return levels


def halving_round(levels, eta, prefact=1):
    """[(epochs, trials)] per rung of one synchronous successive-halving round over `levels`
    (`rung_levels`): the book's n_k = prefact eta^(K-k) trials at levels[k]."""
    K = len(levels) - 1
    return [(r, prefact * eta ** (K - k)) for k, r in enumerate(levels)]


class Scheduler:
    """Decides the configuration and resource of each trial; `pruner()` stops trials early."""

    def __init__(self, space, r_max):
        self.space = ConfigSpace(space)
        self.r_max = int(r_max)

    def suggest(self, study, trial):
        """The trial's configuration dict (hyperparameters plus `max_epochs`), or None to skip it."""
        return dict(suggest_config(trial, self.space), max_epochs=self.r_max)

    def update(self, study, trial, error):
        """Called after a trial finished; the storage already holds what schedulers need."""

    def pruner(self):
        return optuna.pruners.NopPruner()

    def prime(self, study):
        """Prepare a new study before its workers start (successive halving queues its first round)."""


class FIFOScheduler(Scheduler):
    """Every trial gets the full `r_max` epochs (the book's BasicScheduler)."""


class SuccessiveHalvingScheduler(Scheduler):
    """Synchronous successive halving with rungs `rung_levels(r_min, r_max, eta)` (see the module docstring).

    `prefact` scales every rung's size as in the book (n_k = prefact eta^(K-k)).
    `poll_seconds`: how often a promoted slot checks whether its previous rung finished.
    """

    def __init__(self, space, r_min, r_max, eta, prefact=1, poll_seconds=0.2):
        super().__init__(space, r_max)
        self.eta, self.prefact, self.poll_seconds = int(eta), int(prefact), poll_seconds
        self.levels = rung_levels(int(r_min), int(r_max), int(eta))
        self.K = len(self.levels) - 1

    def plan(self, round_index):
        """[(epochs, trials)] per rung of a round (`halving_round`)."""
        return halving_round(self.levels, self.eta, self.prefact)

    def _enqueue_round(self, study, index, trial=None):
        """Queue round `index` as WAITING slot trials (`trial`, when given, takes rung 0 slot 0)."""
        plan = self.plan(index)
        attrs = {"sh_round": index, "sh_plan": plan}
        for k, (_, n) in enumerate(plan):
            for i in range(n):
                slot = dict(attrs, sh_rung=k, sh_slot=i)
                if trial is not None and (k, i) == (0, 0):
                    for key, value in slot.items():
                        trial.set_user_attr(key, value)
                else:
                    study.enqueue_trial({}, user_attrs=slot)

    def prime(self, study):
        """Queue the first round in a new study (before any worker starts)."""
        if not study.get_trials(deepcopy=False):
            self._enqueue_round(study, 0)

    def _next_round(self, study, trial):
        """The worker that takes a round's first slot queues the following round, exactly once
        (popping a WAITING trial is atomic); a fresh trial in an unprimed study starts a round."""
        if "sh_round" not in trial.user_attrs:
            rounds = [t.user_attrs.get("sh_round", -1) for t in study.get_trials(deepcopy=False)]
            self._enqueue_round(study, max(rounds, default=-1) + 1, trial=trial)
        attrs = trial.user_attrs
        if attrs["sh_rung"] == 0 and attrs["sh_slot"] == 0 and not attrs.get("sh_next_queued"):
            trial.set_user_attr("sh_next_queued", True)  # copied to a retry, which must not queue again
            self._enqueue_round(study, attrs["sh_round"] + 1)

    def _previous_rung(self, study, trial):
        """The finished trials of the rung below `trial`'s (waiting while some still run)."""
        round_, rung = trial.user_attrs["sh_round"], trial.user_attrs["sh_rung"]
        while True:
            below = [t for t in study.get_trials(deepcopy=False)
                     if t.user_attrs.get("sh_round") == round_ and t.user_attrs.get("sh_rung") == rung - 1]
            if not any(t.state == TrialState.RUNNING for t in below):
                return below
            time.sleep(self.poll_seconds)

    def suggest(self, study, trial):
        self._next_round(study, trial)
        plan, rung = trial.user_attrs["sh_plan"], trial.user_attrs["sh_rung"]
        if rung > 0 and "promoted_from" not in trial.user_attrs:
            ranked = sorted((t for t in self._previous_rung(study, trial) if t.state == TrialState.COMPLETE),
                            key=lambda t: (t.value, t.number))
            slot = trial.user_attrs["sh_slot"]
            if slot >= len(ranked):
                return None
            trial.set_user_attr("promoted_from", ranked[slot].number)
            trial.set_user_attr("seed", ranked[slot].user_attrs.get("seed"))
        return dict(suggest_config(trial, self.space), max_epochs=int(plan[rung][0]))


class HyperbandScheduler(SuccessiveHalvingScheduler):
    """Successive-halving rounds cycling through Hyperband's brackets s = K, K-1, ..., 0.

    Bracket s starts ceil((K + 1) / (s + 1) eta^s) trials at levels[K - s] epochs and
    keeps the best 1/eta at each higher level (Li et al. 2018).
    """

    def plan(self, round_index):
        s = self.K - round_index % (self.K + 1)
        n0 = math.ceil((self.K + 1) / (s + 1) * self.eta ** s)
        return [(r, max(1, n0 // self.eta ** i)) for i, r in enumerate(self.levels[self.K - s:])]


def asha_continues(error, rung_errors, eta):
    """ASHA's stopping rule: continue iff `error` is among the best max(1, n // eta) of the n errors
    reported at this rung so far (`rung_errors`, including this trial's)."""
    k = max(1, len(rung_errors) // int(eta))
    return error <= sorted(rung_errors)[k - 1]


class ASHAPruner(optuna.pruners.BasePruner):
    """The ASHA stopping rule as an Optuna pruner: decides at each rung level (< r_max) a trial reports."""

    def __init__(self, levels, eta):
        self.levels, self.eta = set(levels), eta

    def prune(self, study, trial):
        step = trial.last_step
        if step is None or step not in self.levels:
            return False
        rung_errors = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
                       if step in t.intermediate_values and t.number != trial.number]
        error = trial.intermediate_values[step]
        return not asha_continues(error, rung_errors + [error], self.eta)


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving, stopping variant: full-resource trials, stopped by `ASHAPruner`."""

    def __init__(self, space, r_min, r_max, eta):
        super().__init__(space, r_max)
        self.levels = rung_levels(int(r_min), int(r_max), int(eta))
        self.eta = int(eta)

    def pruner(self):
        return ASHAPruner(self.levels[:-1], self.eta)


class OptunaSHAScheduler(Scheduler):
    """FIFO with Optuna's own `SuccessiveHalvingPruner` (ASHA's stopping rule), for comparisons."""

    def __init__(self, space, r_min, r_max, eta):
        super().__init__(space, r_max)
        self.r_min, self.eta = int(r_min), int(eta)

    def pruner(self):
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.r_min, reduction_factor=self.eta)


SCHEDULERS = ("fifo", "sh", "hyperband", "asha", "optuna-asha")


def make_scheduler(name, space, r_min, r_max, eta):
    """A scheduler by CLI name."""
    if name == "fifo":
        return FIFOScheduler(space, r_max)
    if name == "optuna-asha":
        return OptunaSHAScheduler(space, r_min, r_max, eta)
    if name == "asha":
        return ASHAScheduler(space, r_min, r_max, eta)
    cls = SuccessiveHalvingScheduler if name == "sh" else HyperbandScheduler
    return cls(space, r_min, r_max, eta)
