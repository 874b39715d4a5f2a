"""aunet.upsample computes exactly what F.interpolate computes at integer scales (x2 above all), and its gradient."""
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
    assert not upsample.applies(t, (8, 12, 15))  # not an integer factor: F.interpolate
    assert not upsample.applies(t.long(), (8, 12, 16))
    assert not upsample.applies(t.double(), (8, 12, 16))  # fast paths are for float32 only
    for fast in (True, False):  # fast: what a module built with the speed-up on passes
        torch.testing.assert_close(interpolate(t, (8, 12, 16), fast=fast), reference(t))
        torch.testing.assert_close(interpolate(t, (5, 9, 11), fast=fast),
                                   F.interpolate(t, size=(5, 9, 11), mode="trilinear", align_corners=False))
    t.requires_grad_(True)
    assert type(interpolate(t, (8, 12, 16), fast=True).grad_fn).__name__ == "_UpsampleBackward"
    assert type(interpolate(t, (8, 12, 16)).grad_fn).__name__ == "UpsampleTrilinear3DBackward0"  # plain by default


@pytest.mark.parametrize("shape,size", [((2, 3, 5, 4, 3), (20, 16, 12)), ((1, 2, 3, 2, 4), (24, 2, 12)),
                                        ((1, 1, 1, 2, 1), (3, 10, 8)), ((2, 3, 4, 5), (12, 5))])
def test_integer_factors_values_and_gradient(shape, size):
    """x4, x8, odd factors and factor 1 on some axes: what the deep-supervision head asks for."""
    torch.manual_seed(0)
    t = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    mode = "bilinear" if t.dim() == 4 else "trilinear"
    expected = F.interpolate(t, size=size, mode=mode, align_corners=False)
    y = upsample.upsample(t, size)
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(y, t, grad)[0], torch.autograd.grad(expected, t, grad)[0])
    assert torch.autograd.gradcheck(lambda x: upsample.upsample(x, size), (t,))


def test_channels_last_and_bfloat16_step():
    """A channels-last input stays channels-last; inside bfloat16 autocast a bfloat16 map stays bfloat16."""
    torch.manual_seed(0)
    t = torch.randn(2, 8, 4, 6, 5).contiguous(memory_format=torch.channels_last_3d).requires_grad_(True)
    y = upsample.upsample(t, (8, 24, 10))
    assert y.is_contiguous(memory_format=torch.channels_last_3d) and not y.is_contiguous()
    torch.testing.assert_close(y, F.interpolate(t, size=(8, 24, 10), mode="trilinear", align_corners=False))
    (g,) = torch.autograd.grad(y.square().sum(), t)
    assert g.is_contiguous(memory_format=torch.channels_last_3d)
    b = t.detach().bfloat16()
    assert not upsample.applies(b, (8, 12, 10))  # bfloat16 outside a bfloat16 step: PyTorch's kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert upsample.applies(b, (8, 12, 10))
        y16 = interpolate(b, (8, 12, 10), fast=True)
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), reference(b.float()), rtol=2e-2, atol=2e-2)
