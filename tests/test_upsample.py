"""aunet.upsample.upsample2x computes exactly what F.interpolate computes at scale 2, and its gradient."""
import pytest
import torch
import torch.nn.functional as F

from aunet import upsample
from aunet.layers import interpolate

pytestmark = pytest.mark.usefixtures("speedups_on")  # tests/conftest.py


def reference(t: torch.Tensor) -> torch.Tensor:
    mode = "bilinear" if t.dim() == 4 else "trilinear"
    return F.interpolate(t, scale_factor=2, mode=mode, align_corners=False)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4, 3), (1, 2, 1, 3, 2), (1, 1, 1, 1, 1), (2, 3, 6, 7), (1, 4, 1, 2)])
def test_same_values_and_gradient_as_interpolate(shape):
    torch.manual_seed(0)
    t = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    y = upsample.upsample2x(t)
    expected = reference(t)
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(expected)
    (got,) = torch.autograd.grad(y, t, grad)
    (want,) = torch.autograd.grad(expected, t, grad)
    torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(upsample.upsample2x, (t,))


def test_float32_and_non_contiguous_input():
    torch.manual_seed(0)
    t = torch.randn(1, 8, 6, 10, 12).transpose(3, 4)  # (1, 8, 6, 12, 10), not contiguous
    assert not t.is_contiguous()
    torch.testing.assert_close(upsample.upsample2x(t), reference(t))


def test_interpolate_takes_it_only_where_it_applies():
    t = torch.randn(1, 2, 4, 6, 8)
    assert upsample.applies(t, (8, 12, 16))
    assert not upsample.applies(t, (8, 12, 15))  # not exactly x2: F.interpolate
    assert not upsample.applies(t.long(), (8, 12, 16))
    assert not upsample.applies(t.double(), (8, 12, 16))  # fast paths are for float32 only
    for fast in (True, False):  # fast: what a module built with the speed-up on passes
        torch.testing.assert_close(interpolate(t, (8, 12, 16), fast=fast), reference(t))
        torch.testing.assert_close(interpolate(t, (5, 9, 11), fast=fast),
                                   F.interpolate(t, size=(5, 9, 11), mode="trilinear", align_corners=False))
    t.requires_grad_(True)
    assert type(interpolate(t, (8, 12, 16), fast=True).grad_fn).__name__ == "_Upsample2xBackward"
    assert type(interpolate(t, (8, 12, 16)).grad_fn).__name__ == "UpsampleTrilinear3DBackward0"  # plain by default
