"""Time budgets (dlstudy.budget): the planner on a fake clock, the ladder, resume, and the CLI's errors."""

import math

import pytest
import torch
from torch import nn

from dlstudy.budget import Budget, Rung, climb, plan_epochs, running
from dlstudy.config import format_duration, validate
from dlstudy.errors import InputError
from dlstudy.runs import Run, read_json
from dlstudy.studies.classify import Config as ClassifyConfig
from dlstudy.train import CosinePlan, Trainer


class Clock:
    """Seconds that pass only when the fake machine works: each training or evaluation batch costs `cost`."""

    def __init__(self, cost: float):
        self.now, self.cost = 0.0, cost

    def __call__(self) -> float:
        return self.now


def data(n=320):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])


def trainer(clock: Clock, budget: Budget | None, *, epochs=20, run=None, after_epoch=None, **kw) -> Trainer:
    def loss(model, batch):  # every batch costs the fake machine `cost` seconds
        clock.now += clock.cost
        x, y = batch
        return ((model(x).squeeze(1) - y) ** 2).mean(), {}

    torch.manual_seed(0)
    return Trainer(
        nn.Linear(5, 1),
        loss,
        epochs=epochs,
        batch_size=32,  # 10 steps an epoch
        lr=0.05,
        optimizer="sgd",
        schedule="cosine",
        budget=budget,
        run=run,
        name="lin",
        after_epoch=after_epoch,
        **kw,
    )


def test_durations_are_read_as_people_write_them():
    cfg = validate(ClassifyConfig, {"budget": "90s"})
    assert cfg.budget == 90.0
    assert validate(ClassifyConfig, {"budget": "20m"}).budget == 1200.0
    assert validate(ClassifyConfig, {"budget": "1.5h"}).budget == 5400.0
    assert validate(ClassifyConfig, {"budget": 45}).budget == 45.0
    assert validate(ClassifyConfig, {"budget": None}).budget is None
    for bad in ("soon", "-5m", "0s"):
        with pytest.raises(InputError, match="budget"):
            validate(ClassifyConfig, {"budget": bad})
    assert (
        format_duration(90) == "90 s"
        and format_duration(390) == "6.5 min"
        and format_duration(5400) == "90 min"
        and format_duration(9000) == "2.5 h"
    )


def test_a_slow_machine_plans_fewer_epochs_than_a_fast_one():
    """Ten steps an epoch; the budget is 100 s. At 1 s a step 9 epochs fit (the measurement's steps count too);
    at 0.1 s a step all 20 the config asks for fit, and the run ends early rather than training past them."""
    planned = {}
    for cost in (1.0, 0.1):
        clock = Clock(cost)
        budget = Budget(100.0, clock=clock)
        t = trainer(clock, budget).fit(data())
        planned[cost] = budget.plans["lin"]
        assert len(t.history_) == planned[cost]["planned_epochs"]
        assert clock.now <= 100.0  # inside the budget
        assert planned[cost]["seconds_per_step"] == pytest.approx(cost)
    assert planned[1.0]["planned_epochs"] == 9 and planned[0.1]["planned_epochs"] == 20
    assert plan_epochs(100.0, 10.0, 20) == 10 and plan_epochs(100.0, 1.0, 20) == 20


def test_what_follows_training_is_kept_in_epochs_of_the_first_training():
    """A study whose explanations cost about four epochs keeps them: 100 s, 10-s epochs, 7 s of measurement:
    9 epochs fit without a tail, 5 with four epochs kept."""
    for tail, epochs in ((0.0, 9), (4.0, 5)):
        clock = Clock(1.0)
        budget = Budget(100.0, tail_epochs=tail, clock=clock)
        trainer(clock, budget).fit(data())
        assert budget.plans["lin"]["planned_epochs"] == epochs and budget.first_epoch == pytest.approx(10.0)


def test_a_slowdown_mid_run_shortens_the_rest_and_the_schedule_still_ends():
    """The machine becomes 3x slower after epoch 3 (other work): the plan is re-checked each epoch, the remaining
    epochs shortened, the cosine re-planned to reach 0 at the new last epoch, and the run keeps to its budget
    (within 5 % or one epoch)."""
    clock = Clock(0.5)
    budget = Budget(120.0, clock=clock)

    def slow_down(epoch, row):
        if epoch == 3:
            clock.cost = 1.5

    t = trainer(clock, budget, after_epoch=slow_down).fit(data())
    plan = budget.plans["lin"]
    assert plan["replans"] and plan["replans"][0]["after_epoch"] == 4  # the first slow epoch is the 4th
    assert len(t.history_) == plan["planned_epochs"] == plan["epochs"] < 20
    assert clock.now <= 120.0 * 1.05 or clock.now - 120.0 <= 15.0  # one epoch at the slow rate
    rates = [row["lr"] for row in t.history_]
    assert all(a > b for a, b in zip(rates, rates[1:]))  # never jumps up
    assert t.scheduler_.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the schedule ended


def test_the_cosine_plan_is_continuous_and_reaches_zero_at_each_new_end():
    plan = CosinePlan(10)
    assert plan(0) == 1.0 and plan(10) == pytest.approx(0.0, abs=1e-12)
    before = plan(4)
    plan.replan(4, 7)
    assert plan(4) == pytest.approx(before) and plan(7) == pytest.approx(0.0, abs=1e-12)
    assert plan(5) < plan(4) and plan(6) < plan(5)


def test_a_budget_too_small_for_one_epoch_names_the_smallest_that_fits():
    clock = Clock(1.0)
    given = frozenset({"budget"})  # the user's --budget: too small is an error
    with pytest.raises(InputError, match=r"too small: one epoch of lin takes about 10 s .* --budget 1m"):
        trainer(clock, Budget(12.0, clock=clock, given=given)).fit(data())


def test_a_default_budget_too_small_takes_the_smallest_that_fits_and_says_so(caplog):
    """Issue 47/50: on a loaded machine the tour's default budgets refused runs the user never budgeted."""
    clock = Clock(1.0)
    budget = Budget(12.0, clock=clock)
    with caplog.at_level("WARNING", logger="dlstudy"):
        t = trainer(clock, budget).fit(data())
    assert len(t.history_) >= 1 and budget.seconds == 60.0
    assert "more than the default budget of 12 s allows; planning with 60 s instead" in caplog.text


def test_explicit_epochs_win_over_the_budget():
    clock = Clock(1.0)
    budget = Budget(50.0, clock=clock)
    t = trainer(clock, budget, epochs=8, fixed_epochs=True).fit(data())
    assert len(t.history_) == 8 and budget.plans["lin"]["fixed"]
    assert "as set in the config" in budget.note(clock.now)


def test_planning_does_not_change_what_is_trained():
    """The measurement runs on a copy with every generator put back: a planned run equals `--epochs N`."""
    clock = Clock(0.1)
    planned = trainer(clock, Budget(1000.0, clock=clock), epochs=5).fit(data())
    plain = trainer(Clock(0.1), None, epochs=5).fit(data())
    assert torch.equal(planned.model.weight, plain.model.weight)


def test_resume_keeps_the_plan_of_the_first_start(tmp_path):
    """Killed after epoch 2 on a slow machine, resumed on a fast one: the run finishes the first plan's epochs
    and schedule, not a new plan."""

    class Killed(Exception):
        pass

    def kill(epoch, row):
        if epoch == 3:
            raise Killed

    run = Run.open(tmp_path / "r", {}, resume=False, study="t")
    clock = Clock(1.0)
    with pytest.raises(Killed):
        trainer(clock, Budget(100.0, clock=clock), run=run, after_epoch=kill).fit(data())
    fast = Clock(0.01)
    budget = Budget(100.0, clock=fast)
    t = trainer(fast, budget, run=run).fit(data())
    assert len(t.history_) == 9 and budget.plans["lin"]["planned_epochs"] == 9
    assert t.history_[-1]["lr"] > 0 and t.epochs == 9


def ladder_cfg():
    return validate(ClassifyConfig, {})


LADDER = [
    Rung("wide", {}, min_epochs=30),
    Rung("narrow", {"model": {"channels": [8, 16, 32, 64]}}, min_epochs=20),
    Rung("narrowest", {"model": {"channels": [4, 8, 16, 32]}}, min_epochs=1),
]
SECONDS = {64: 10.0, 32: 3.0}  # an epoch of each rung on the fake machine, by its last block's width


@pytest.mark.parametrize(
    "budget, rung, width",
    [(3600.0, "wide", 384), (1000.0, "narrow", 64), (100.0, "narrowest", 32)],
)
def test_the_ladder_picks_the_widest_net_that_trains_enough_epochs(tmp_path, budget, rung, width):
    run = Run.open(tmp_path / "r", {}, resume=False, study="classify")
    timed = []

    def epoch_seconds(cfg):
        timed.append(cfg.model.channels[-1])
        return SECONDS.get(cfg.model.channels[-1], 60.0)

    with running(Budget(budget)):
        cfg = climb(run, ladder_cfg(), LADDER, epoch_seconds=epoch_seconds)
    assert cfg.model.channels[-1] == width and timed[-1] == width
    assert read_json(run.file("plan.json"))["rung"] == rung
    assert validate(ClassifyConfig, {}).model_dump() != cfg.model_dump() or rung == "wide"
    # a resume keeps the rung without measuring again, even where the machine is now faster
    with running(Budget(10**6)):
        again = climb(run, ladder_cfg(), LADDER, epoch_seconds=lambda c: pytest.fail("measured again"))
    assert again.model.channels == cfg.model.channels


def test_the_ladder_stays_out_of_a_net_the_user_chose(tmp_path):
    run = Run.open(tmp_path / "r", {}, resume=False, study="classify")
    with running(Budget(10.0, given=frozenset({"model.channels"}))):
        cfg = climb(run, ladder_cfg(), LADDER, epoch_seconds=lambda c: pytest.fail("no rung is measured"))
    assert cfg == ladder_cfg() and not run.file("plan.json").exists()


def test_a_budget_too_small_is_exit_2_before_any_epoch(tmp_path, cli):
    out = tmp_path / "run"
    # an epoch of classify --quick takes 0.7 s on 2 cores: it cannot fit in 0.5 s whatever is cached already
    code, _, err = cli("classify", "--quick", "--budget", "0.5s", "--out", out)
    assert code == 2, err
    assert "too small" in err and "the smallest budget that fits is --budget" in err
    assert len(err.strip().splitlines()) == 1  # no progress or data line before the refusal (issue 47)
    assert err.strip().startswith("dlstudy: error: --budget 0.5 s is too small") and not out.exists()
    code, _, err = cli("classify", "--budget", "soon", "--out", tmp_path / "x")
    assert code == 2 and "budget" in err and "90s, 20m, 1.5h" in err


def test_a_run_records_its_budget_and_plan(tour):
    folder, code, _, _ = tour
    for study in ("trend", "classify", "generate", "cluster"):
        metrics = read_json(folder / study / "metrics.json")
        assert metrics["budget_seconds"] > 0 and metrics["planned_epochs"] >= 1
        plan = next(iter(metrics["plan"].values()))
        assert plan["seconds_per_step"] > 0 and 1 <= plan["epochs"] <= plan["planned_epochs"]  # early stopping
        assert math.isfinite(plan["allotted_seconds"])
        page = (folder / study / "report.html").read_text()
        assert "class='note budget'" in page and "Budget " in page


def test_run_all_lets_a_study_use_what_is_left_but_half_the_later_studies_fair_shares():
    from dlstudy.cli import study_share

    assert study_share(300.0, 0.0, 0.75) == 187.5  # the tour's first study (cluster) with 5 minutes
    assert study_share(300.0, 100.0, 0.0) == 200.0  # the last study takes all that is left
    assert study_share(300.0, 299.5, 0.5) == 1.0  # nothing left: the study's own check says the budget is too small
