import json

import numpy as np
import pytest

from dlstudy.derivations import batchnorm, conv_shape, lstm, pca, softmax_ce, word2vec
from dlstudy.errors import InputError

# The homework's LSTM (W = [0,0,0,1], W_i = [100,100,0,0], b_i = -10, ...): y to 3 decimals.
HOMEWORK_Y = [0.0, 1.0, 4.0, 4.0, 0.0, 5.999, 1.0, 3.0]


def test_lstm_homework_trace():
    d = lstm.derive(lstm.Params())
    assert [round(v, 3) for v in d.results["y"]] == HOMEWORK_Y
    assert d.results["c"][0] == 3.0 and d.results["c"][2] == 4.0
    # the forget gate at z_f = 10 is not exactly 1: the hand answer c = 1 at t = 2 is off by 1.4e-4
    assert d.results["c"][1] == pytest.approx(3 * (1 / (1 + np.exp(-10))) - 2 * (1 / (1 + np.exp(-90))), abs=1e-15)
    assert d.passed


@pytest.mark.parametrize("module", [lstm, conv_shape, batchnorm, softmax_ce, word2vec, pca])
def test_every_derivation_passes_its_checks(module):
    d = module.derive(module.Params(), seed=3)
    assert d.checks and d.passed, d.verdict()
    assert all(c.tolerance <= 1e-7 for c in d.checks)


def test_a_wrong_gradient_is_caught(monkeypatch):
    real = batchnorm.backward

    def forgets_the_mean_path(*args):
        g = real(*args)
        g["dx"] = g["dx_hat"] / np.sqrt(
            args[4][1] + args[3]
        )  # the common mistake: dl/dx = dl/dx_hat / std (var in the cache)
        return g

    monkeypatch.setattr(batchnorm, "backward", forgets_the_mean_path)
    d = batchnorm.derive(batchnorm.Params())
    assert not d.passed and "dl/dx against autograd" in d.verdict()

    monkeypatch.setattr(softmax_ce, "softmax_ce_grad", lambda z, y: softmax_ce.softmax(z) - y)  # forgot 1/N
    assert not softmax_ce.derive(softmax_ce.Params()).passed


@pytest.mark.parametrize("seed", range(5))
def test_conv_shape_random_settings(seed):
    rng = np.random.default_rng(seed)
    p = conv_shape.Params(
        input=[2, *map(int, rng.integers(8, 40, 2)), 3],
        kernel=list(map(int, rng.integers(1, 6, 2))),
        stride=list(map(int, rng.integers(1, 4, 2))),
        padding=list(map(int, rng.integers(0, 3, 2))),
        random_checks=20,
    )
    d = conv_shape.derive(p, seed=seed)
    assert d.passed and d.results["output_shape"][0] == 2


def test_conv_shape_formula_known_answers():
    assert conv_shape.output_size(32, 5, 1, 0) == 28
    assert conv_shape.output_size(32, 3, 2, 1) == 16
    assert conv_shape.output_size(28, 3, 1, 0, d=2) == 24


@pytest.mark.parametrize(
    "params, words",
    [
        ({"stride": [0, 1]}, "stride must be at least 1"),
        ({"kernel": [40, 3]}, "more than the padded input"),
        ({"input": [1, 2, 3]}, "must be \\(B, W, H, C\\)"),
    ],
)
def test_conv_shape_bad_input(params, words):
    with pytest.raises(InputError, match=words):
        conv_shape.derive(conv_shape.Params(**params))


def test_lstm_bad_vector_lengths():
    with pytest.raises(InputError, match="length 3 but inputs have length 4"):
        lstm.derive(lstm.Params(w=[0, 0, 1], w_i=[1, 1, 1], w_f=[1, 1, 1], w_o=[1, 1, 1]))
    with pytest.raises(InputError, match="lists of numbers of one length"):
        lstm.derive(lstm.Params(w=[0, 0, 1]))


def test_cli_lstm_json_and_yaml(tmp_path, cli):
    weights = tmp_path / "w.yaml"
    weights.write_text("lstm:\n  inputs: [[0, 1, 0, 3], [1, 0, 1, -2]]\n")
    code, out, _ = cli("-q", "derive", "lstm", "--json", "--config", weights, "--out", tmp_path / "r")
    assert code == 0
    result = json.loads(out)["lstm"]
    assert [round(v, 3) for v in result["y"]] == HOMEWORK_Y[:2] and result["passed"]
    assert (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "results.json").exists()
    weights.write_text("lstm:\n  inputs: [[0, 1, 0], [1, 0, 1]]\n")
    code, _, err = cli("-q", "derive", "lstm", "--config", weights, "--out", tmp_path / "r2")
    assert code == 2 and "inputs have length 3" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("-q", "derive", "conv-shape", "--set", "conv_shape.stride=[0, 1]", "--out", tmp_path / "r3")
    assert code == 2 and "stride must be at least 1" in err


def test_cli_derive_all_fails_when_a_check_fails(tmp_path, cli, monkeypatch):
    code, out, _ = cli("derive", "all", "--out", tmp_path / "ok")
    assert code == 0 and out.count(": pass (") == 6
    monkeypatch.setattr(word2vec.np, "outer", lambda a, b: np.multiply.outer(a, b) * 1.001)
    code, out, _ = cli("derive", "all", "--out", tmp_path / "bad")
    assert code == 1 and "word2vec: FAIL" in out
