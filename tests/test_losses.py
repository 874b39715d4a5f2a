"""Soft Dice and Dice + CE: range, perfect prediction, gradients, empty classes, autocast, MONAI."""
import pytest
import torch
from monai.losses import DiceLoss

from aunet.errors import AunetError
from aunet.losses import DiceCELoss, SoftDiceLoss, build_loss, soft_dice_loss


def _random(shape=(2, 4, 8, 8, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 3
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return logits, target


def test_perfect_prediction_gives_about_zero():
    _, target = _random()
    logits = torch.nn.functional.one_hot(target, 4).movedim(-1, 1).float() * 50  # softmax ~ one-hot
    assert soft_dice_loss(logits, target).item() < 1e-6
    assert build_loss("dice_ce")(logits, target).item() < 1e-6


def test_wrong_prediction_is_near_one():
    _, target = _random()
    logits = torch.nn.functional.one_hot((target + 1) % 4, 4).movedim(-1, 1).float() * 50
    assert soft_dice_loss(logits, target).item() > 0.99


@pytest.mark.parametrize("seed", range(5))
def test_value_in_unit_interval_and_gradient_finite(seed):
    logits, target = _random(seed=seed)
    logits.requires_grad_(True)
    loss = soft_dice_loss(logits, target)
    assert 0 <= loss.item() <= 1
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_matches_monai_dice_loss_with_batch_sums():
    logits, target = _random(seed=3)
    monai = DiceLoss(include_background=True, to_onehot_y=True, softmax=True, batch=True,
                     smooth_nr=0.01, smooth_dr=0.01)(logits, target[:, None])
    torch.testing.assert_close(soft_dice_loss(logits, target), monai)


def test_matches_formula_by_hand():
    logits, target = _random(shape=(1, 3, 4, 4, 4), seed=7)
    p = torch.softmax(logits, 1)
    dices = []
    for k in range(3):
        t = (target == k).float()
        dices.append((2 * (p[:, k] * t).sum() + 0.01) / (p[:, k].sum() + t.sum() + 0.01))
    torch.testing.assert_close(soft_dice_loss(logits, target), 1 - torch.stack(dices).mean())


def test_empty_class_no_nan():
    logits, _ = _random()
    target = torch.zeros(2, 8, 8, 6, dtype=torch.long)  # only background: classes 1-3 empty
    logits.requires_grad_(True)
    for loss_fn in (SoftDiceLoss(), DiceCELoss()):
        loss = loss_fn(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    confident = torch.full((2, 4, 8, 8, 6), -30.0)
    confident[:, 0] = 30.0  # predicts the empty classes as empty: they count as Dice ~1
    assert soft_dice_loss(confident, target).item() < 1e-6


def test_channel_axis_target_and_autocast_float32():
    logits, target = _random()
    expected = soft_dice_loss(logits, target)
    torch.testing.assert_close(soft_dice_loss(logits, target[:, None]), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = build_loss("dice_ce")(logits.bfloat16(), target)
        dice = soft_dice_loss(logits.bfloat16(), target)
    assert loss.dtype == torch.float32 and dice.dtype == torch.float32
    assert abs(dice.item() - expected.item()) < 0.02  # only the bf16 rounding of the logits differs


def test_dice_ce_adds_cross_entropy():
    logits, target = _random(seed=1)
    expected = torch.nn.functional.cross_entropy(logits, target) + soft_dice_loss(logits, target)
    torch.testing.assert_close(build_loss("dice_ce")(logits, target), expected)


def test_errors():
    logits, target = _random()
    with pytest.raises(AunetError, match="Unknown loss 'focal'"):
        build_loss("focal")
    with pytest.raises(ValueError, match="does not match"):
        soft_dice_loss(logits, target[:, :4])
    with pytest.raises(ValueError, match="integer"):
        soft_dice_loss(logits, target.float())
