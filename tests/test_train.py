import pytest
import torch
from torch import nn

from dlstudy.runs import Run
from dlstudy.train import Trainer, bf16_native, precision


def regression_data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.01 * torch.randn(n, generator=g)
    return x, y


def mse(model, batch):
    x, y = batch
    loss = ((model(x).squeeze(1) - y) ** 2).mean()
    return loss, {"abs_err": (model(x).squeeze(1) - y).abs().mean()}


def noisy_mse():
    """A loss with its own generator, as the augmenting losses have (input noise stands in for augmentation)."""
    generator = torch.Generator().manual_seed(7)

    def loss(model, batch):
        x, y = batch
        return mse(model, (x + 0.3 * torch.randn(x.shape, generator=generator), y))

    loss.generator = generator
    return loss


def make(run=None, epochs=6, loss=mse, optimizer="sgd", **kw):
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    return Trainer(
        model,
        loss,
        epochs=epochs,
        batch_size=32,
        lr=0.05,
        optimizer=optimizer,
        schedule="cosine",
        run=run,
        name="lin",
        **kw,
    )


def test_loss_decreases_and_history_has_metrics():
    t = make().fit(regression_data())
    losses = [h["loss"] for h in t.history_]
    assert len(losses) == 6 and losses[-1] < 0.05 * losses[0]
    assert {"epoch", "lr", "loss", "abs_err"} <= set(t.history_[0])


def test_the_log_names_the_precision_and_amx(monkeypatch):
    """The same config's time differs up to 4x between CPUs with AMX, with AVX512-BF16 alone and without
    either, so the log says which path a run took."""
    import dlstudy.train

    cpu = torch.device("cpu")
    for native, tiles, said in [
        (True, True, "bf16 autocast (AMX)"),
        (True, False, "bf16 autocast"),
        (False, True, "float32"),
        (False, False, "float32"),
    ]:
        monkeypatch.setattr(dlstudy.train, "bf16_native", lambda device, native=native: native)
        monkeypatch.setattr(dlstudy.train, "amx", lambda device, tiles=tiles: tiles)
        assert precision(cpu, True) == said
        assert precision(cpu, False) == "float32"  # amp off: float32 whatever the CPU has


def test_nesterov_momentum_learns_and_differs_from_plain_momentum():
    plain, nesterov = (make(optimizer=name).fit(regression_data()) for name in ("sgd", "nesterov"))
    assert nesterov.history_[-1]["loss"] < 0.05 * nesterov.history_[0]["loss"]
    assert nesterov.history_[0]["loss"] != pytest.approx(plain.history_[0]["loss"], rel=1e-3)  # the flag reached SGD


@pytest.mark.parametrize("loss", [lambda: mse, noisy_mse], ids=["plain", "own-generator"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, loss):
    data = regression_data()
    full = make(loss=loss()).fit(data)

    class Killed(Exception):
        pass

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise Killed

    run = Run.open(tmp_path / "r", {}, resume=False, study="t")
    with pytest.raises(Killed):
        make(run, loss=loss(), after_epoch=kill_after_two).fit(data)
    resumed = make(run, loss=loss()).fit(data)  # a fresh process would build everything anew, as here
    assert [h["epoch"] for h in resumed.history_] == list(range(1, 7))
    assert torch.allclose(resumed.model.weight, full.model.weight, atol=1e-6)
    assert resumed.history_[-1]["loss"] == pytest.approx(full.history_[-1]["loss"], rel=1e-5)
    # a finished checkpoint is loaded, not trained again
    again = make(run, loss=loss()).fit(data)
    assert len(again.history_) == 6 and torch.equal(again.model.weight, resumed.model.weight)


def test_early_stopping_restores_the_best_weights():
    x, y = regression_data()
    val = (x[:64], -y[:64])  # a validation set the model can only get worse on
    t = make(epochs=30, patience=2).fit((x, y), val)
    assert len(t.history_) < 30
    best = min(h["val_loss"] for h in t.history_)
    assert t.evaluate(val)["loss"] == pytest.approx(best, rel=1e-4)


def test_tensorboard_events_are_written(tmp_path):
    run = Run.open(tmp_path / "r", {}, resume=False, study="t")
    make(run, epochs=2, tensorboard=True).fit(regression_data())
    assert list((tmp_path / "r" / "tensorboard" / "lin").glob("events.out.tfevents.*"))


def test_amp_autocasts_to_bf16_only_where_it_is_native():
    seen = []

    def spy(model, batch):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return mse(model, batch)

    torch.manual_seed(0)
    t = Trainer(
        nn.Linear(5, 1), spy, epochs=6, batch_size=32, lr=0.05, optimizer="sgd", schedule="cosine", amp=True
    ).fit(regression_data())
    native = bf16_native(torch.device("cpu"))
    assert set(seen) == ({torch.bfloat16} if native else {None})
    full = make().fit(regression_data())  # the same fit in float32
    assert t.history_[-1]["loss"] < 0.05 * t.history_[0]["loss"]  # bf16 matmuls still learn the line,
    assert t.history_[-1]["loss"] < full.history_[-1]["loss"] + 0.05  # to within bf16's precision of float32
    assert not bf16_native(torch.device("meta"))


@pytest.mark.parametrize(
    "study, sets, score, floor",
    [
        (
            "classify",
            [
                "data.limit=600",
                "train.epochs=1",
                "explain.methods=[gradient]",
                "explain.randomise=[gradient]",
                "explain.steps=5",
                "explain.deletion_images=30",
            ],
            "public_accuracy",
            0.3,
        ),  # the majority digit: 0.11
        (
            "cluster",
            [
                "data.limit=300",
                "grid.encoders=[simclr]",
                "grid.reductions=[none]",
                "contrastive.train.epochs=1",
                "contrastive.train.amp=true",
                "figures.map_points=300",
            ],
            "accuracy",
            0.25,
        ),  # random clusters of these 300 digits, best matched: 0.18 (0.21 at most in 200 draws)
    ],
)
def test_the_studies_that_autocast_run_end_to_end_in_bf16(monkeypatch, tmp_path, study, sets, score, floor):
    """CUDA and AVX512-BF16 CPUs train these models under bf16 autocast; CI's CPUs may lack it, so force it
    (emulated bf16: slower, but the same ops and dtypes) and run each study end to end on a little real data."""
    import dlstudy.train
    from dlstudy.api import run_study

    asked = []
    monkeypatch.setattr(dlstudy.train, "bf16_native", lambda device: asked.append(device) or True)
    folder, metrics = run_study(study, out=tmp_path / study, sets=sets, quick=True, device="cpu")
    assert asked, "no Trainer of the study had amp on"
    assert (folder / "report.html").exists()
    assert metrics[score] > floor, metrics[score]  # one short epoch in bf16 learns something
    if study == "classify":  # the run's log names what it computed in
        assert "bf16 autocast" in (folder / "log.txt").read_text()
