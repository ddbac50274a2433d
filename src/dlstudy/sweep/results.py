"""What a sweep leaves: trials.csv, summary.json (with each configuration's mean, sd and 95 % interval
over seeds) and report.html (trials, best configuration, importances, Optuna's plots, seed spread)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from dlstudy import plots  # noqa: F401  (matplotlib set up for data text)
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
        row = {"number": t.number, "state": {"FAIL": "failed"}.get(t.state.name, t.state.name.lower()),
               "value": t.value if complete else None, "seed": a.get("seed"),
               "run_dir": a.get("run_dir")}
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
        out.append({"config": int(c), **params, "n": n, "mean": float(values.mean()), "sd": sd,
                    "ci95_low": None if half is None else float(values.mean()) - half,
                    "ci95_high": None if half is None else float(values.mean()) + half,
                    "values": [float(v) for v in values]})
    sign = -1 if direction == "maximize" else 1
    return sorted(out, key=lambda r: (r["n"] < seeds, sign * r["mean"]))


def summarize(trials: pd.DataFrame, space: Space, spec: SweepSpec) -> dict:
    ended = final_rows(trials)
    configs = per_config(ended, space, spec.direction, spec.seeds)
    best = configs[0] if configs else None
    return {
        "study": spec.study, "metric": spec.metric, "direction": spec.direction, "seeds": spec.seeds,
        "n_trials": int(len(trials)), "n_complete": int((ended["state"] == "complete").sum()),
        "n_pruned": int((ended["state"] == "pruned").sum()), "n_failed": int((ended["state"] == "failed").sum()),
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
        f"its own report; the metric is read from its metrics.json. Space: {space.source}; pruner: {spec.pruner}.")
    configs = summary["configurations"]
    if configs:
        best = configs[0]
        spread = (f" (sd {best['sd']:.4f}, 95 % interval {best['ci95_low']:.4f} to {best['ci95_high']:.4f})"
                  if best["sd"] is not None else "")
        report.paragraph(f"Best configuration: {_describe(best, space) or 'the study defaults'}, {spec.metric} "
                         f"{best['mean']:.4f}{' mean over ' + str(best['n']) + ' seeds' if best['n'] > 1 else ''}{spread}.")
        report.heading("Configurations")
        report.table([{k: v for k, v in r.items() if k != "values"} for r in configs], highlight=0,
                     caption=f"Mean {spec.metric} over each configuration's complete seeds, best first; the 95 % "
                             "interval is the t interval of the mean")
        if spec.seeds > 1:
            report.figure(seed_spread(configs, space, spec), "seed_spread",
                          "Mean +- sd over seeds per configuration, with each seed's value as a dot")
    report.heading("Trials")
    order = trials.sort_values("value", ascending=spec.direction == "minimize", na_position="last")
    report.table([{**{k: _plain(v) for k, v in row.items() if k != "run_dir"},
                   "report": Link("report", f"{row['run_dir']}/report.html") if row["run_dir"] else None}
                  for row in order.to_dict("records")], caption="Every trial, ordered by the metric")
    optuna_figures(report, study, space)
    report.write(config=json.loads(json.dumps(spec.__dict__)))


def _describe(row: dict, space: Space) -> str:
    return ", ".join(f"{k} = {row[k]}" for k in space.keys)


def seed_spread(configs: list[dict], space: Space, spec: SweepSpec):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(configs) + 2), 3.6))
    for i, r in enumerate(configs):
        ax.errorbar(i, r["mean"], yerr=r["sd"] or 0, fmt="o", color="C0", capsize=4)
        ax.scatter(np.full(len(r["values"]), i + 0.15), r["values"], s=10, color="C1")
    labels = ["\n".join(f"{k.split('.')[-1]}={json.dumps(r[k])}" for k in space.keys) or "defaults" for r in configs]
    ax.set_xticks(range(len(configs)), labels,
                  fontsize=7, rotation=0 if len(configs) < 6 else 45, ha="center" if len(configs) < 6 else "right")
    ax.set_ylabel(spec.metric)
    return fig


def optuna_figures(report: Report, study, space: Space) -> None:
    """Parameter importances and Optuna's own plots, where the finished trials can support them."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = [k for k in space.keys if len({json.dumps(t.params.get(k)) for t in complete}) > 1]
    if len(complete) < 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.heading("Optimisation history")
        ax = ovm.plot_optimization_history(study)
        ax.set_ylabel(study.user_attrs["spec"]["metric"])
        report.figure(ax.figure, "history",
                      "The metric of each complete trial in the order they finished, and the best so far")
        if not varied:
            return
        if len({t.value for t in complete}) == 1:
            report.paragraph(f"Every complete trial scored {complete[0].value:.4f}: no parameter made a difference "
                             "here, so there are no importances to estimate.", note=True)
        elif len(varied) > 1 and len(complete) >= 4:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=varied)
            report.heading("Parameter importances")
            report.table([{"parameter": k, "importance": v} for k, v in importances.items()],
                         caption="fANOVA importance: the share of the metric's variance each parameter explains "
                                 "(a random forest fitted to the complete trials)")
            report.heading("Parallel coordinates")
            report.figure(ovm.plot_parallel_coordinate(study, params=varied).figure, "parallel_coordinates",
                          "Each complete trial as a line through its parameter values, coloured by the metric")
        axes = ovm.plot_slice(study, params=varied)
        report.heading("Metric against each parameter")
        report.figure(np.ravel(axes)[0].figure, "slice", "The metric of every complete trial against each swept value")
