import csv
import json
import re

import numpy as np
import pandas as pd
import pytest

from dlstudy.studies.trend import answers
from dlstudy.config import resolve
from dlstudy.data import windows
from dlstudy.data.countries import map_codes
from dlstudy.data.covid import CaseSeries, daily_new_cases, load_case_series, parse_date
from dlstudy.errors import InputError
from dlstudy.runs import is_complete
from dlstudy.studies import trend

COURSE = "covid/covid_19.csv"
JHU = "covid/time_series_covid19_confirmed_global.csv"
TINY = ["--set", "windows.lengths=[5]", "--set", "train.epochs=2", "--set", "model.cells=[gru]"]


def test_mangled_headers():
    assert parse_date("2002/1/20") == pd.Timestamp("2020-02-01")
    assert parse_date("2003/12/20") == pd.Timestamp("2020-03-12")
    assert parse_date("1/22/20") == pd.Timestamp("2020-01-22")
    assert parse_date("2020-04-12") == pd.Timestamp("2020-04-12")
    assert parse_date("Lat") is None


def test_course_file(data_root):
    s = load_case_series(data_root / COURSE)
    assert s.counts.shape == (185, 82) and s.cumulative
    assert s.counts.index[0] == "Afghanistan" and s.counts.index[-1] == "Zimbabwe"
    days = s.counts.columns
    assert days[0] == pd.Timestamp("2020-01-22") and days[-1] == pd.Timestamp("2020-04-12")
    assert (np.diff(days.values).astype("timedelta64[D]") == np.timedelta64(1, "D")).all()  # no gaps, no mangling left
    with open(data_root / COURSE, newline="") as f:
        rows = list(csv.reader(f))
    header, afghanistan = rows[0], next(r for r in rows if r[0] == "Afghanistan")
    assert s.counts.loc["Afghanistan", pd.Timestamp("2020-02-01")] == float(afghanistan[header.index("2002/1/20")])
    assert s.counts.loc["Afghanistan"].iloc[-1] == float(afghanistan[-1])


def test_jhu_file_sums_provinces(data_root):
    s = load_case_series(data_root / JHU)
    assert s.counts.shape == (201, 345) and s.cumulative
    assert s.counts.columns[-1] == pd.Timestamp("2020-12-31")
    with open(data_root / JHU, newline="") as f:
        rows = list(csv.reader(f))
    china = sum(float(r[-1]) for r in rows[1:] if r[1] == "China")
    assert s.counts.loc["China"].iloc[-1] == china and "Korea, South" in s.counts.index


def test_negative_corrections_policies():
    counts = pd.DataFrame([[1, 5, 4, 10]], index=["x"], columns=pd.date_range("2020-01-01", periods=4), dtype=float)
    s = CaseSeries(counts, cumulative=True, source="t")
    clip, changed = daily_new_cases(s, "clip")
    assert clip.iloc[0].tolist() == [1, 4, 0, 6] and changed["x"] == 1
    spread, _ = daily_new_cases(s, "spread")
    assert spread.iloc[0].tolist() == [1, 3, 0, 6] and spread.iloc[0].sum() == 10  # totals kept
    with pytest.raises(InputError, match="clip or spread"):
        daily_new_cases(s, "drop")


def test_windows_and_labels_on_a_hand_made_series():
    x, y, series, target = windows.make_windows(np.array([[0, 1, 3, 2, 2, 5.0]]), 2)
    assert x.tolist() == [[0, 1], [1, 3], [3, 2], [2, 2]]
    assert y.tolist() == [1, 0, 0, 1]  # 3 > 1, 2 > 3, 2 > 2, 5 > 2
    assert target.tolist() == [2, 3, 4, 5] and series.tolist() == [0] * 4
    with pytest.raises(InputError, match="needs more than the 6 days"):
        windows.make_windows(np.zeros((1, 6)), 6)


def test_time_split_keeps_the_future_out():
    cfg = resolve(trend.Config)
    target = np.tile(np.arange(5, 100), 3)
    fit, val, test = windows.split_indices(target, 100, "time", cfg, 0)
    assert target[fit].max() < target[val].min() <= target[val].max() < target[test].min()
    assert len(set(fit) | set(val) | set(test)) == len(target)
    assert abs(len(test) / len(target) - 0.3) < 0.02


def test_correlation_rules():
    t = np.arange(50.0)
    daily = pd.DataFrame([t, 2 * t + 1, np.sin(t), np.zeros(50)], index=["a", "b", "c", "flat"])
    corr = windows.correlations(daily)
    assert corr.loc["a", "b"] == pytest.approx(1.0) and corr.loc["flat", "a"] == 0
    assert windows.select_countries(corr, 0.9, "any") == ["a", "b"]
    assert windows.select_countries(corr, 0.9, "mean") == []


def test_every_country_name_is_placed_or_listed(data_root):
    names = set(load_case_series(data_root / COURSE).counts.index) | set(load_case_series(data_root / JHU).counts.index)
    codes = map_codes(names)
    for name, code in {
        "US": "us",
        "Korea, South": "kr",
        "Taiwan*": "tw",
        "Burma": "mm",
        "Congo (Kinshasa)": "cd",
        "Holy See": "va",
        "Iran": "ir",
        "Russia": "ru",
    }.items():
        assert codes[name] == code
    unplaced = {n for n, c in codes.items() if c is None}
    assert {"Diamond Princess", "MS Zaandam", "Kosovo"} <= unplaced and len(unplaced) < 35
    assert len(set(c for c in codes.values() if c)) > 160


def test_other_csv_layouts(tmp_path):
    (tmp_path / "wide.csv").write_text("country,2020-01-01,2020-01-02,2020-01-03\nA,1,2,4\nB,0,0,1\n")
    s = load_case_series(tmp_path / "wide.csv")
    assert s.counts.shape == (2, 3) and s.cumulative
    (tmp_path / "long.csv").write_text(
        "entity,date,cases\nA,2020-01-01,1\nA,2020-01-02,3\nB,2020-01-01,0\nB,2020-01-02,2\n"
    )
    assert load_case_series(tmp_path / "long.csv").counts.loc["A"].tolist() == [1, 3]


@pytest.mark.parametrize(
    "content, words",
    [
        ("country,a,b\nX,1,2\nY,3,4\nZ,5,6\n", "no date columns"),
        ("country,1/1/20,1/2/20\nX,1,two\n", "'two' for 'X' on 1/2/20"),
    ],
)
def test_bad_csvs(tmp_path, cli, content, words):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = cli("-q", "trend", "--data", tmp_path / "bad.csv", "--out", tmp_path / "r")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not is_complete(tmp_path / "r") and not (tmp_path / "r" / "metrics.json").exists()


def test_too_few_days_name_a_fix_that_works_when_followed(tmp_path):
    """Issue 47: every fix a message names must get past that error when followed."""
    import re as regex

    cfg = resolve(trend.Config, sets=["windows.lengths=[3, 10, 30]"])
    assert windows.days_needed(30, cfg) > 33
    for days in (5, 6, 12, 33):
        with pytest.raises(InputError) as caught:
            windows.check_days(days, cfg, "data.csv")
        message = str(caught.value)
        suggested = regex.search(r"--set windows.lengths=\[([\d, ]+)\]", message)
        if suggested:
            fixed = resolve(trend.Config, sets=[f"windows.lengths=[{suggested.group(1)}]"])
            windows.check_days(days, fixed, "data.csv")  # gets past the error
        else:
            more = int(regex.search(r"at least (\d+) days; give", message + "; give").group(1))
            needed = int(regex.search(r"give a series of at least (\d+) days", message).group(1))
            windows.check_days(needed, resolve(trend.Config, sets=["windows.lengths=[2]"]), "data.csv")
            assert more >= needed


def test_one_country_is_refused_with_what_to_give(tmp_path, cli):
    """Issue 47: one country's CSV said 'lower --threshold', which failed again at -1, with a raw warning."""
    data = tmp_path / "one.csv"
    days = pd.date_range("2020-03-01", periods=60).strftime("%Y-%m-%d")
    pd.DataFrame([np.arange(60) * 3], index=pd.Index(["Only"], name="country"), columns=days).to_csv(data)
    code, _, err = cli("-q", "trend", "--data", data, "--out", tmp_path / "r", "--threshold", "-1")
    assert code == 2 and err.strip().count("\n") == 0 and "two or more countries" in err and "Warning" not in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "windows.lengths=[90]"], "82 days are too few for windows of L = 90"),
        (["--set", "data.start_date=2021-01-01"], "outside the data"),
        (["--threshold", "1", "--set", "correlation.rule=mean"], "keeps no country"),
        (
            ["--threshold", "1.01"],
            "--threshold must be less than or equal to 1",  # the flag the user typed, not its config key
        ),  # a correlation threshold past 1 is a typo
        (["--set", "model.cells=[transformer]"], "config key 'model.cells' (item 0) must be 'rnn', 'lstm' or 'gru'"),
    ],
)
def test_bad_settings_on_real_data(data_root, tmp_path, cli, args, words):
    code, _, err = cli("-q", "trend", "--data", data_root / COURSE, "--out", tmp_path / "r", *args)
    assert code == 2 and words in err
    assert not is_complete(tmp_path / "r") and not (tmp_path / "r" / "metrics.json").exists()


def test_run_on_the_course_file(data_root, tmp_path, cli):
    out = tmp_path / "r"
    code, _, err = cli("-q", "trend", "--data", data_root / COURSE, "--out", out, *TINY)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "test_balanced_accuracy",
        "test_f1",
        "majority_baseline_accuracy",
        "logistic_baseline_accuracy",
        "n_countries",
        "n_windows",
        "best_model",
        "best_window",
    ):
        assert key in m
    assert m["best_model"] == "gru" and m["best_window"] == 5 and 150 < m["n_countries"] <= 185
    assert m["test_accuracy"] > m["majority_baseline_accuracy"] - 0.05  # two epochs: at least near the baseline
    probs = pd.read_csv(out / "probabilities.csv", keep_default_na=False)
    assert len(probs) == 185 and probs["probability"].between(0, 1).all()
    svg = (out / "figures" / "world_map.svg").read_text()
    placed = probs.loc[probs["map_code"] != "", "map_code"]
    assert len(placed) > 150 and all(f'class="{code} country map-element color-' in svg for code in placed)
    assert "<script" not in svg
    # a legend: one entry per probability band, trained-on countries apart from scored-only ones
    assert 'class="legends"' in svg and svg.count('class="legend reactive') >= 2 and "trained on" in svg
    code, out_text, err = cli("predict", out, "--data", data_root / COURSE, "--out", tmp_path / "p.csv")
    assert code == 0, err and "all_windows_accuracy" in out_text


def test_default_is_offline_who_data(tmp_path, cli):
    code, _, err = cli("-q", "trend", "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["n_series"] == 201 and not (tmp_path / "r" / "figures" / "world_map.svg").exists()


def test_a_killed_run_resumes_without_retraining(data_root, tmp_path, cli, monkeypatch):
    from dlstudy.studies.trend import experiment as trend_fit

    real = trend_fit.latest_probabilities

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed after the grid, before the report

    monkeypatch.setattr(trend_fit, "latest_probabilities", killed)
    out = tmp_path / "r"
    code, _, err = cli("-q", "trend", "--data", data_root / COURSE, "--out", out, *TINY)
    assert code == 130 and not is_complete(out)
    monkeypatch.setattr(trend_fit, "latest_probabilities", real)
    code, _, err = cli("trend", "--data", data_root / COURSE, "--out", out, "--resume", *TINY)
    assert code == 0 and is_complete(out)
    assert err.count("finished earlier") == 2  # both splits' models came back from their checkpoints


def rows_for(window, *, balanced, auc, train_share=0.22, test_share=0.43):
    base = {
        "window": window,
        "split": "time",
        "train_rise_share": train_share,
        "test_rise_share": test_share,
        "n_test": 500,
        "val_balanced_accuracy": 0.6,
    }
    return [
        {**base, "model": "gru", "test_balanced_accuracy": balanced, "test_roc_auc": auc},
        {**base, "model": "majority", "test_balanced_accuracy": 0.5, "test_roc_auc": 0.5},
    ]


def against_half(difference, p):
    """A hand-made test of a statistic against 0.5 with its p-value."""
    from dlstudy.analysis.uncertainty import Comparison

    return Comparison(
        a="GRU",
        b="0.5",
        difference=difference,
        low=difference - 0.03,
        high=difference + 0.03,
        se=0.015,
        p=p,
        what="x",
        items="days",
    )


def test_window_sentences_say_whether_and_why():
    rows = (
        rows_for(3, balanced=0.5, auc=0.69)
        + rows_for(10, balanced=0.60, auc=0.64)
        + rows_for(20, balanced=0.5, auc=0.51)
    )
    family = {
        "signal:L3": against_half(0.0, 0.9),
        "ranking:L3": against_half(0.19, 0.002),
        "signal:L10": against_half(0.10, 0.002),
        "ranking:L10": against_half(0.14, 0.002),
        "signal:L20": against_half(0.0, 0.8),
        "ranking:L20": against_half(0.01, 0.7),
    }
    said = answers.window_sentences(rows, family)
    assert said[0].startswith("L = 3 (GRU, chosen on the validation days): no, but not for lack of signal")
    assert "yet it ranks rises above chance" in said[0]
    assert "22% of the training windows and 43% of the test windows" in said[0]
    assert said[1].startswith("L = 10 (GRU, chosen on the validation days): yes: GRU is better than 0.5")
    assert said[2].startswith("L = 20 (GRU, chosen on the validation days): no: GRU against 0.5: no difference")
    # the chosen cell is named by validation, never by the test days
    picked = rows_for(5, balanced=0.7, auc=0.7) + [
        {**rows_for(5, balanced=0.5, auc=0.5)[0], "model": "rnn", "val_balanced_accuracy": 0.9}
    ]
    from dlstudy.studies.trend.inference import chosen_per_window

    assert chosen_per_window(picked)[5]["model"] == "rnn"


def random_walks(path, countries=20, days=100, seed=0):
    """Daily counts that walk at random: whether tomorrow's count exceeds today's is a coin toss whatever the
    window shows, so no model can beat the majority class."""
    rng = np.random.default_rng(seed)
    counts = 5000 + np.cumsum(rng.normal(0, 40, (countries, days)).round(), axis=1)
    dates = pd.date_range("2020-03-01", periods=days).strftime("%Y-%m-%d")
    frame = pd.DataFrame(counts.clip(0).astype(int), index=[f"C{i}" for i in range(countries)], columns=dates)
    frame.index.name = "country"
    frame.to_csv(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_signal_data_claims_no_skill_no_overfitting_and_no_uncorrected_better(seed, tmp_path, cli):
    """Issue 46: on counts with no signal at all, no report says a model beats the majority class, that a model
    overfits, or that a window carries signal; it names its resampling unit and its correction."""
    data = random_walks(tmp_path / "walks.csv", seed=seed)
    out = tmp_path / "r"
    code, _, err = cli(
        "-q", "trend", "--quick", "--data", data, "--out", out, "--seed", seed, "--set", "data.start_date=null"
    )
    assert code == 0, err
    page = re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())
    assert "is better than the majority class" not in page, seed
    assert "overfits these windows" not in page and ": yes:" not in page, seed
    assert "drawn by whole days" in page and "Holm" in page


@pytest.mark.slow
def test_short_windows_learn_beyond_the_majority_on_the_default_data(tmp_path, cli):
    """The default (WHO) series: with class weights (the default) short windows beat the majority class,
    and the report says so for each window; without them every model answers one class, and the
    report says why (ranking above chance, rises rarer in the training days)."""
    short = ["--set", "windows.lengths=[3]", "--set", "model.cells=[gru]"]
    code, _, err = cli("-q", "trend", "--out", tmp_path / "w", *short)
    assert code == 0, err
    m = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert m["test_balanced_accuracy"] > 0.55
    assert "(GRU, chosen on the validation days): yes:" in (tmp_path / "w" / "report.html").read_text()
    code, _, err = cli("-q", "trend", "--out", tmp_path / "u", *short, "--set", "model.class_weights=false")
    assert code == 0, err
    assert json.loads((tmp_path / "u" / "metrics.json").read_text())["test_balanced_accuracy"] == pytest.approx(
        0.5, abs=0.01
    )
    assert (
        "(GRU, chosen on the validation days): no, but not for lack of signal"
        in (tmp_path / "u" / "report.html").read_text()
    )


@pytest.mark.slow
def test_quick_on_the_course_file_carries_intervals_and_names_its_paired_tests(data_root, tmp_path, cli):
    """Issue 35's check: trend --quick on covid_19.csv has test_balanced_accuracy_ci95 and its report names the
    paired test behind each comparison."""
    out = tmp_path / "q"
    code, _, err = cli("-q", "trend", "--quick", "--data", data_root / COURSE, "--out", out)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    low, high = m["test_balanced_accuracy_ci95"]
    assert low < m["test_balanced_accuracy"] < high and high - low < 0.1  # thousands of test days: a narrow band
    page = (out / "report.html").read_text()
    assert "paired block bootstrap, Student&#x27;s t" in page and "McNemar" not in page
    assert "drawn by whole days in" in page and "Holm&#x27;s correction over all" in page
    assert "resampling" in m and "days" in m["resampling"]
    assert "class='reduced-run'" in page and "dlstudy trend --data covid_19.csv" in page


@pytest.mark.slow
def test_seeds_write_the_studys_own_report_over_the_seeds(data_root, tmp_path, cli):
    """Issue 35's check: `trend --quick --seeds 3` writes one report.html with the study's answers over the seeds,
    mean ± sd tables and curves with a band; the sweep's page stays beside it."""
    out = tmp_path / "s"
    code, printed, err = cli(
        "-q",
        "trend",
        "--quick",
        "--seeds",
        "3",
        "--data",
        data_root / COURSE,
        "--out",
        out,
        "--set",
        "windows.lengths=[10]",
        "--set",
        "model.cells=[gru, rnn]",
        "--set",
        "train.epochs=2",
    )
    assert code == 0, err
    assert f"report: {out / 'report.html'}" in printed and (out / "sweep.html").exists()
    page = (out / "report.html").read_text()
    assert "3 seeds</h1>" in page and "class='reduced-run'" in page and 'href="sweep.html"' in page
    answered = re.findall(r'<p class="answer" data-question="(\d+)">', page)
    assert sorted(map(int, answered)) == list(range(7, 13))
    assert "All 3 seeds give this answer in the same words" in page  # preprocessing: the same data every seed
    assert "(mean ± sd over 3 seeds)" in page and "curves_over_seeds" in page
    assert "sd over seeds" in page and "t-interval" in page and "prediction interval" in page
    assert "larger spread" not in page and "Comparisons over the seeds" in page and "t-test over the seeds" in page
    for seed in range(3):
        assert (out / "trials" / f"c000-s{seed}" / "report.json").exists()
