"""What a sweep leaves: trials.csv, summary.json (with each configuration's mean, sd and 95 % interval
over seeds) and report.html (trials, best configuration, importances, Optuna's plots, seed spread)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from dlstudy import plots  # noqa: F401  (matplotlib set up for data text)
from dlstudy.config import format_duration
from dlstudy.report import Link, Report
from dlstudy.runs import Run
from dlstudy.sweep.engine import SweepSpec
from dlstudy.sweep.space import Space

FIRST = ["number", "state", "value", "seed", "run_dir"]


def trials_frame(study, space: Space) -> pd.DataFrame:
    """One row per trial: number, state, value, seed, run_dir, one column per swept key, then config,
    seconds and the reason of a failed or pruned trial."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "config" not in t.user_attrs:
            continue
        a = t.user_attrs
        complete = t.state.name == "COMPLETE"  # a pruned trial's value is its last signed per-epoch report
        row = {
            "number": t.number,
            "state": {"FAIL": "failed"}.get(t.state.name, t.state.name.lower()),
            "value": t.value if complete else None,
            "seed": a.get("seed"),
            "run_dir": a.get("run_dir"),
        }
        row.update({k: space.param(k).decode(t.params[k]) if k in t.params else None for k in space.keys})
        row.update({"config": a["config"], "seconds": a.get("seconds"), "reason": a.get("error") or a.get("lost")})
        rows.append(row)
    columns = [*FIRST, *space.keys, "config", "seconds", "reason"]
    return pd.DataFrame(rows, columns=columns)


def final_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The trial that ended each (configuration, seed): a retried pair counts once."""
    done = trials[trials["state"].isin(["complete", "pruned", "failed"])]
    return done.sort_values("number").groupby(["config", "seed"], as_index=False).last()


def per_config(trials: pd.DataFrame, space: Space, direction: str, seeds: int) -> list[dict]:
    """Mean, sd and a 95 % t interval of the metric over each configuration's complete seeds; best first,
    among the configurations whose every seed completed (a mean over fewer seeds is not comparable)."""
    from scipy import stats

    out = []
    complete = trials[trials["state"] == "complete"]
    for c, group in complete.groupby("config"):
        values = group["value"].to_numpy(float)
        n = len(values)
        sd = float(values.std(ddof=1)) if n > 1 else None
        half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else None
        params = {k: _plain(group.iloc[0][k]) for k in space.keys}
        out.append(
            {
                "config": int(c),
                **params,
                "n": n,
                "mean": float(values.mean()),
                "sd": sd,
                "ci95_low": None if half is None else float(values.mean()) - half,
                "ci95_high": None if half is None else float(values.mean()) + half,
                "values": [float(v) for v in values],
                "seeds": [int(v) for v in group["seed"]],
            }
        )
    sign = -1 if direction == "maximize" else 1
    return sorted(out, key=lambda r: (r["n"] < seeds, sign * r["mean"]))


def summarize(trials: pd.DataFrame, space: Space, spec: SweepSpec) -> dict:
    ended = final_rows(trials)
    configs = per_config(ended, space, spec.direction, spec.seeds)
    best = configs[0] if configs else None
    return {
        "study": spec.study,
        "metric": spec.metric,
        "direction": spec.direction,
        "seeds": spec.seeds,
        "n_trials": int(len(trials)),
        "n_complete": int((ended["state"] == "complete").sum()),
        "n_pruned": int((ended["state"] == "pruned").sum()),
        "n_failed": int((ended["state"] == "failed").sum()),
        "n_retried": int(len(trials) - len(ended) - trials["state"].isin(["waiting", "running"]).sum()),
        "best_value": None if best is None else best["mean"],
        "best_params": None if best is None else {k: best[k] for k in space.keys},
        "best_config": None if best is None else best["config"],
        "configurations": configs,
    }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write(run: Run, study, space: Space, spec: SweepSpec, *, trials: pd.DataFrame, summary: dict) -> None:
    run.write_text("trials.csv", trials.to_csv(index=False))
    run.write_json("summary.json", summary)
    report = Report(f"Sweep of the {spec.study} study: {spec.metric} ({spec.direction})", run=run)
    report.paragraph(
        f"{summary['n_complete']} complete, {summary['n_pruned']} pruned and {summary['n_failed']} failed of "
        f"{spec.trials} configuration(s) x {spec.seeds} seed(s) (seeds {spec.base_seed} to {spec.base_seed + spec.seeds - 1}); "
        f"{summary['n_retried']} trial(s) lost to a dead worker and retried. Each trial is an ordinary run folder with "
        f"its own report; the metric is read from its metrics.json. Space: {space.source}; pruner: {spec.pruner}."
    )
    if summary.get("n_not_started"):
        report.paragraph(
            f"{summary['n_not_started']} trial(s) were not started: a trial took about "
            f"{format_duration(summary['trial_seconds'])} and the sweep's budget of "
            f"{format_duration(summary['budget_seconds'])} would not fit them. The same command with --resume runs them."
        )
    configs = summary["configurations"]
    if configs:
        best = configs[0]
        spread = (
            f" (sd {best['sd']:.4f}, 95 % interval {best['ci95_low']:.4f} to {best['ci95_high']:.4f})"
            if best["sd"] is not None
            else ""
        )
        report.paragraph(
            f"Best configuration: {_describe(best, space) or 'the study defaults'}, {spec.metric} "
            f"{best['mean']:.4f}{' mean over ' + str(best['n']) + ' seeds' if best['n'] > 1 else ''}{spread}."
        )
        report.heading("Configurations")
        report.table(
            [{k: v for k, v in r.items() if k not in ("values", "seeds")} for r in configs],
            highlight=0,
            caption=f"Mean {spec.metric} over each configuration's complete seeds, best first; the 95 % "
            "interval is the t interval of the mean",
        )
        if spec.seeds > 1:
            report.figure(
                seed_spread(configs, space, spec),
                "seed_spread",
                "Mean +- sd over seeds per configuration, with each seed's value as a dot",
            )
    ranked = importances(study, space)
    missing_cells(report, trials, space, spec)
    grid_pivot(report, summary, final_rows(trials), space, ranked)
    report.heading("Trials")
    order = trials.sort_values("value", ascending=spec.direction == "minimize", na_position="last")
    report.table(
        [
            {
                **{k: _plain(v) for k, v in row.items() if k != "run_dir"},
                "report": Link("report", f"{row['run_dir']}/report.html") if row["run_dir"] else None,
            }
            for row in order.to_dict("records")
        ],
        caption="Every trial, ordered by the metric",
    )
    optuna_figures(report, study, space, ranked)
    if seeds_only(space):  # report.html is the study's own report over the seeds (dlstudy.sweep.seeds)
        report.paragraph("The study's own report over these seeds: report.html.", note=True)
    report.write("sweep.html" if seeds_only(space) else "report.html", config=json.loads(json.dumps(spec.__dict__)))


def seeds_only(space: Space) -> bool:
    """A sweep of seeds alone (`dlstudy STUDY --seeds K`): no grid and nothing sampled."""
    return not space.grid and not space.params


def _describe(row: dict, space: Space) -> str:
    return ", ".join(f"{k} = {row[k]}" for k in space.keys)


def seed_spread(configs: list[dict], space: Space, spec: SweepSpec):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(configs) + 2), 3.6))
    for i, r in enumerate(configs):
        ax.errorbar(i, r["mean"], yerr=r["sd"] or 0, fmt="o", color="C0", capsize=4)
        ax.scatter(np.full(len(r["values"]), i + 0.15), r["values"], s=10, color="C1")
    labels = ["\n".join(f"{k.split('.')[-1]}={json.dumps(r[k])}" for k in space.keys) or "defaults" for r in configs]
    ax.set_xticks(
        range(len(configs)),
        labels,
        fontsize=7,
        rotation=0 if len(configs) < 6 else 45,
        ha="center" if len(configs) < 6 else "right",
    )
    ax.set_ylabel(spec.metric)
    return fig


def optuna_figures(report: Report, study, space: Space, ranked: dict) -> None:
    """Parameter importances (`ranked`) and Optuna's own plots, where the finished trials can support them."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = varied_keys(study, space)
    if len(complete) < 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.heading("Optimisation history")
        ax = ovm.plot_optimization_history(study)
        ax.set_ylabel(study.user_attrs["spec"]["metric"])
        report.figure(
            ax.figure, "history", "The metric of each complete trial in the order they finished, and the best so far"
        )
        if not varied:
            return
        if len({t.value for t in complete}) == 1:
            report.paragraph(
                f"Every complete trial scored {complete[0].value:.4f}: no parameter made a difference "
                "here, so there are no importances to estimate.",
                note=True,
            )
        elif ranked:
            report.heading("Parameter importances")
            report.table(
                [{"parameter": k, "importance": v} for k, v in ranked.items()],
                caption="fANOVA importance: the share of the metric's variance each parameter explains "
                "(a random forest fitted to the complete trials)",
            )
            report.heading("Parallel coordinates")
            report.figure(
                ovm.plot_parallel_coordinate(study, params=varied).figure,
                "parallel_coordinates",
                "Each complete trial as a line through its parameter values, coloured by the metric",
            )
        axes = ovm.plot_slice(study, params=varied)
        report.heading("Metric against each parameter")
        report.figure(np.ravel(axes)[0].figure, "slice", "The metric of every complete trial against each swept value")


def varied_keys(study, space: Space) -> list[str]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [k for k in space.keys if len({json.dumps(t.params.get(k)) for t in complete}) > 1]


def importances(study, space: Space) -> dict:
    """fANOVA importance of each varied key, most important first; {} where the trials cannot support it."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = varied_keys(study, space)
    if len(varied) < 2 or len(complete) < 4 or len({t.value for t in complete}) == 1:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varied
        )


def missing_cells(report: Report, trials: pd.DataFrame, space: Space, spec: SweepSpec) -> None:
    """Say which cells a pruner stopped: they have no value, which is not the same as a bad one."""
    pruned = final_rows(trials)
    pruned = pruned[pruned["state"] == "pruned"]
    if pruned.empty:
        return
    cells = "; ".join(sorted({_describe(r, space) or "the defaults" for r in pruned.to_dict("records")}))
    report.paragraph(
        f"{len(pruned)} trial(s) were stopped by the {spec.pruner} pruner and are missing from the "
        f"means and the grid: {cells}. A pruned cell was worse than the median at an early epoch, which "
        "is not a measurement of its final value; rerun with --pruner none to measure every cell."
    )


def grid_pivot(report: Report, summary: dict, ended: pd.DataFrame, space: Space, ranked: dict) -> None:
    """Two listed keys as a grid (rows x columns), each cell mean +- sd over seeds, shaded, the best marked.
    With more keys: the two most important (fANOVA), the others held at the best configuration's values."""
    keys = [p.key for p in (*space.grid, *space.params) if p.values]
    configs = summary["configurations"]
    if len(keys) < 2 or not configs:
        return
    rows_key, cols_key = sorted(keys, key=lambda k: -ranked.get(k, -1))[:2] if ranked else keys[:2]
    best = configs[0]
    held = {k: best[k] for k in keys if k not in (rows_key, cols_key)}
    by_config = {r["config"]: r for r in configs}
    states = ended.groupby("config")["state"].agg(lambda s: ", ".join(sorted(set(s)))).to_dict()
    cells, seen = {}, set()
    for row in ended.sort_values("config").to_dict("records"):
        if any(json.dumps(_plain(row[k])) != json.dumps(v) for k, v in held.items()) or row["config"] in seen:
            continue
        seen.add(row["config"])
        where = (_label(row[rows_key]), _label(row[cols_key]))
        cells[where] = _cell(by_config.get(row["config"]), best, states.get(row["config"], "not run"))
    means = [r["mean"] for r in configs if r["config"] in seen]
    low, high = min(means), max(means)
    for where, cell in cells.items():  # shade 1 = the best end of the range, whichever the direction
        conf = cell[1]
        if conf is not None and high > low:
            shade = (conf["mean"] - low) / (high - low)
            cells[where] = cell[0]._replace(shade=shade if summary["direction"] == "maximize" else 1 - shade)
        else:
            cells[where] = cell[0]
    fixed = ", ".join(f"{k} = {v}" for k, v in held.items())
    fixed = f"; the other keys held at the best configuration's values ({fixed})" if held else ""
    report.heading(f"The grid: {rows_key} against {cols_key}")
    report.grid(
        cells,
        rows=rows_key,
        columns=cols_key,
        caption=f"Mean {summary['metric']} over seeds (± sd), darker is better, the best marked{fixed}. "
        "With seeds, each cell says whether it differs from the best by a paired t-test over the "
        "seeds both ran (p < 0.05), or not beyond the seed spread.",
    )


def _label(value) -> str:
    value = _plain(value)
    return value if isinstance(value, str) else json.dumps(value)


def _cell(conf: dict | None, best: dict, state: str):
    """(GridCell, the configuration's statistics or None) for one cell."""
    from dlstudy.report import GridCell

    if conf is None:
        return GridCell(state, note="missing: no value was measured"), None
    text = f"{conf['mean']:.4f}" + (f" ± {conf['sd']:.4f}" if conf["sd"] is not None else "")
    if conf["config"] == best["config"]:
        return GridCell(text, note=f"best, {conf['n']} seeds" if conf["n"] > 1 else "", best=True), conf
    return GridCell(text, note=paired_note(conf, best)), conf


def paired_note(conf: dict, best: dict) -> str:
    """Whether a configuration differs from the best beyond the seed spread: a paired t-test over shared seeds."""
    from scipy import stats

    shared = sorted(set(conf["seeds"]) & set(best["seeds"]))
    if len(shared) < 2:
        return ""
    a = np.array([conf["values"][conf["seeds"].index(s)] for s in shared])
    b = np.array([best["values"][best["seeds"].index(s)] for s in shared])
    diff = a - b
    if np.allclose(diff, diff[0]):  # no spread in the differences: the t statistic is undefined
        return (
            "same as the best on every seed"
            if diff[0] == 0
            else f"differs from the best on every seed by {diff[0]:+.4f}"
        )
    p = float(stats.ttest_rel(a, b).pvalue)
    if p < 0.05:
        return f"differs from the best (paired t, {len(shared)} seeds, p {p:.3f})"
    return f"no difference from the best beyond the seed spread (paired t, p {p:.3f})"
