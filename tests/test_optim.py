"""The optimiser and the learning-rate schedule a Config names (aunet.optim)."""
import pytest
import torch

from aunet.config import Config
from aunet.errors import AunetError
from aunet.optim import POLY_EXPONENT, SGD_MOMENTUM, build_optimizer, build_schedule


def lrs(cfg: Config) -> list[float]:
    """The learning rate of every epoch of a run of cfg.epochs, as the trainer steps the schedule."""
    optimizer = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    schedule = build_schedule(cfg, optimizer)
    out = []
    for _ in range(cfg.epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


def test_step_schedule_is_the_papers():
    cfg = Config(epochs=1000, lr=1e-4)  # the paper: halved every 250 epochs
    got = lrs(cfg)
    assert got[0] == got[249] == 1e-4 and got[250] == pytest.approx(5e-5) and got[999] == pytest.approx(1.25e-5)


def test_poly_schedule_falls_to_zero_at_the_last_epoch():
    cfg = Config(epochs=40, lr=2e-3, lr_schedule="poly")
    got = lrs(cfg)
    assert got[0] == 2e-3 and all(a > b for a, b in zip(got, got[1:]))
    assert got[20] == pytest.approx(2e-3 * 0.5 ** POLY_EXPONENT) and got[-1] == pytest.approx(2e-3 * 40 ** -0.9)


def test_sgd_is_nesterov_and_adam_is_the_default():
    params = [torch.nn.Parameter(torch.zeros(1))]
    sgd = build_optimizer(Config(optimizer="sgd", lr=1e-2), params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == SGD_MOMENTUM
    assert isinstance(build_optimizer(Config(), params), torch.optim.Adam)


def test_unknown_names_are_one_sentence():
    for field, value in (("optimizer", "lion"), ("lr_schedule", "cosine")):
        with pytest.raises(AunetError, match=f"{field}='{value}' is not valid"):
            Config.from_dict({field: value}).validate()


def test_a_poly_run_resumes_only_for_its_own_epochs():
    from aunet.train import check_resumable

    saved = Config(epochs=40, lr_schedule="poly")
    check_resumable(saved, Config(epochs=40, lr_schedule="poly", device="cpu"), "RUN")  # the same run, continued
    with pytest.raises(AunetError, match="poly learning-rate schedule falls to 0 at epoch 40"):
        check_resumable(saved, Config(epochs=80, lr_schedule="poly"), "RUN")
    check_resumable(Config(epochs=40), Config(epochs=80), "RUN")  # a step schedule continues
