import optuna
import pytest

from gp_hpo.hpo.schedulers import (ASHAPruner, HyperbandScheduler, SuccessiveHalvingScheduler, asha_continues,
                                   rung_levels)
from gp_hpo.hpo.tuner import StudySettings, Tuner

SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}


def learning_curve(config, report):
    """error = x + 1 / epoch: ranks by x at every rung."""
    for epoch in range(1, config["max_epochs"] + 1):
        if not report(epoch, config["x"] + 1.0 / epoch):
            return


def tune(tmp_path, scheduler, trials, **kw):
    settings = StudySettings(objective=f"{__name__}:learning_curve", space=SPACE, storage=str(tmp_path / "j.log"),
                             scheduler=scheduler, trials=trials, **kw)
    tuner = Tuner(settings)
    summary = tuner.run(1)
    return summary, tuner.records


def test_rung_levels_and_plans():
    assert rung_levels(1, 9, 3) == [1, 3, 9]
    assert rung_levels(2, 10, 2) == [2, 4, 8, 10]  # the book's example: r_max appended as the last rung
    assert SuccessiveHalvingScheduler(SPACE, 2, 10, 2).plan(0) == [(2, 8), (4, 4), (8, 2), (10, 1)]
    hb = HyperbandScheduler(SPACE, 1, 9, 3)
    # brackets s = 2, 1, 0: n0 = ceil(3 / (s + 1) * 3^s) at 9 * 3^-s epochs
    assert [hb.plan(i) for i in range(4)] == [[(1, 9), (3, 3), (9, 1)], [(3, 5), (9, 1)], [(9, 3)],
                                              [(1, 9), (3, 3), (9, 1)]]
    with pytest.raises(Exception, match="--min-epochs <= --max-epochs"):
        rung_levels(5, 3, 3)


def test_successive_halving_rungs_and_promotions_by_hand(tmp_path):
    summary, rows = tune(tmp_path, "sh", trials=13, min_epochs=1, max_epochs=9, eta=3)
    assert [r["epochs"] for r in rows] == [1] * 9 + [3] * 3 + [9]
    xs = {r["trial"]: r["param_x"] for r in rows}
    best3 = sorted(range(9), key=lambda n: xs[n])[:3]
    assert [r["promoted_from"] for r in rows[9:12]] == best3  # the top 1/eta of rung 1, best first
    assert rows[12]["promoted_from"] == 9  # the best of rung 3 (trial 9 retrained the best config)
    assert rows[12]["param_x"] == xs[best3[0]] and rows[12]["seed"] == rows[best3[0]]["seed"]
    assert rows[12]["error"] == pytest.approx(xs[best3[0]] + 1 / 9)
    assert summary["total_epochs"] == 9 * 1 + 3 * 3 + 1 * 9
    assert summary["best_error"] == pytest.approx(xs[best3[0]] + 1 / 9)


def test_asha_stopping_rule_on_a_scripted_sequence():
    # eta = 3; errors arrive one by one at a rung; continue iff among the best max(1, n // 3)
    arrivals = [0.5, 0.7, 0.4, 0.45, 0.3, 0.42, 0.41, 0.9, 0.2]
    decisions = [asha_continues(e, arrivals[:i + 1], 3) for i, e in enumerate(arrivals)]
    #             n=1   n=2    n=3   n=4    n=5   n=6: k=2 -> 0.4  n=7 -> k=2, 2nd best 0.4  n=8  n=9: k=3
    assert decisions == [True, False, True, False, True, False, False, False, True]


def test_asha_pruner_in_a_study():
    study = optuna.create_study()
    pruner = ASHAPruner([1, 3], eta=3)
    for errors in ([0.5, 0.4], [0.6], [0.45, 0.35], [0.3]):
        t = study.ask()
        for epoch, e in zip((1, 3), errors):
            t.report(e, epoch)
        study.tell(t, errors[-1])
    trial = study.ask()
    trial.report(0.55, 1)
    # rung 1 holds 0.5, 0.6, 0.45, 0.3 and 0.55: k = 5 // 3 = 1, best 0.3 -> stop
    assert pruner.prune(study, study._storage.get_trial(trial._trial_id))
    trial.report(0.2, 2)  # not a rung level: never stops
    assert not pruner.prune(study, study._storage.get_trial(trial._trial_id))


def test_asha_on_the_tuner_follows_the_rule(tmp_path):
    summary, rows = tune(tmp_path, "asha", trials=20, min_epochs=1, max_epochs=9, eta=3)
    rung = {1: [], 3: []}
    for r in rows:  # one worker: replay the decisions in trial order
        x, epochs = r["param_x"], None
        for level in (1, 3):
            rung[level].append(x + 1 / level)
            if not asha_continues(x + 1 / level, rung[level], 3):
                epochs = level
                break
        assert r["epochs"] == (epochs or 9) and r["state"] == ("pruned" if epochs else "complete")
    assert summary["total_epochs"] == sum(r["epochs"] for r in rows) < 20 * 9 / 2
    assert summary["best_error"] == pytest.approx(min(r["param_x"] for r in rows if r["epochs"] == 9) + 1 / 9)


def test_hyperband_runs_its_brackets(tmp_path):
    summary, rows = tune(tmp_path, "hyperband", trials=21, min_epochs=1, max_epochs=9, eta=3)
    assert [r["epochs"] for r in rows] == [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9] + [9, 9]
    # Li et al.'s plan for r_min 1, r_max 9, eta 3 (K = 2) by hand: bracket s starts n = ceil(3 / (s + 1) 3^s)
    # configurations at 9 / 3^s epochs and keeps floor(n / 3^i) at rung i: s = 2: 9 x 1, 3 x 3, 1 x 9;
    # s = 1: 5 x 3, 1 x 9; s = 0: 3 x 9 (the budget of 21 trials stops it after 2)
    brackets = [(range(0, 13), [(1, 9), (3, 3), (9, 1)]), (range(13, 19), [(3, 5), (9, 1)]), (range(19, 21), [(9, 2)])]
    assert all(r["state"] == "complete" for r in rows) and len(rows) == 21
    for numbers, plan in brackets:
        bracket = [rows[n] for n in numbers]
        rungs, start = [], 0
        for epochs, n in plan:
            rungs.append(bracket[start:start + n])
            start += n
            assert [r["epochs"] for r in rungs[-1]] == [epochs] * n
        assert all(r["promoted_from"] == "" for r in rungs[0])  # fresh configurations, none drawn twice
        assert len({r["param_x"] for r in rungs[0]}) == len(rungs[0])
        for below, rung in zip(rungs, rungs[1:]):  # each rung retrains the best of the rung below, best first
            best = sorted(below, key=lambda r: (r["error"], r["trial"]))[:len(rung)]
            assert [r["promoted_from"] for r in rung] == [r["trial"] for r in best]
            assert [(r["param_x"], r["seed"]) for r in rung] == [(r["param_x"], r["seed"]) for r in best]
    for r in rows:
        assert r["error"] == pytest.approx(r["param_x"] + 1 / r["epochs"])
    assert summary["trials"] == 21 and summary["total_epochs"] == 9 * 1 + 3 * 3 + 9 + 5 * 3 + 9 + 2 * 9 == 69
    assert summary["best_error"] == pytest.approx(min(r["param_x"] + 1 / r["epochs"] for r in rows))


def test_successive_halving_queues_rounds_once():
    sh = SuccessiveHalvingScheduler(SPACE, 1, 9, 3)
    study = optuna.create_study()
    trial = study.ask()  # an unprimed study: the first trial starts round 0 and queues round 1
    assert sh.suggest(study, trial)["max_epochs"] == 1
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.user_attrs["sh_round"], t.user_attrs["sh_rung"]) for t in waiting] == \
        [(0, 0)] * 8 + [(0, 1)] * 3 + [(0, 2)] + [(1, 0)] * 9 + [(1, 1)] * 3 + [(1, 2)]
    second = study.ask()  # pops round 0's slot 1: queues nothing
    assert second.user_attrs["sh_slot"] == 1 and sh.suggest(study, second)["max_epochs"] == 1
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == len(waiting) - 1
