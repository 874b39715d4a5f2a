"""aunet.fastconv.Conv3d computes exactly what nn.Conv3d computes: outputs and all three gradients."""
import pytest
import torch
import torch.nn.functional as F

from aunet import AttentionUNet, fastconv, speedups

pytestmark = pytest.mark.usefixtures("speedups_on")  # tests/conftest.py


@pytest.mark.parametrize("batch,c_in,c_out,size,bias", [
    (1, 3, 5, (8, 6, 7), True),
    (2, 4, 2, (6, 8, 8), False),
    (1, 1, 4, (2, 4, 4), True),  # the smallest even depth: halves of one slice each
])
def test_same_output_and_gradients_as_conv3d(batch, c_in, c_out, size, bias):
    torch.manual_seed(0)
    conv = fastconv.Conv3d(c_in, c_out, 3, padding=1, bias=bias)
    x = torch.randn(batch, c_in, *size, requires_grad=True)
    assert fastconv.applies(conv, x)
    grad = torch.randn(batch, c_out, *size)
    y = conv(x)
    y.backward(grad)
    got = [y.detach(), x.grad, conv.weight.grad] + ([conv.bias.grad] if bias else [])
    x.grad, conv.weight.grad, conv.bias = None, None, conv.bias
    if bias:
        conv.bias.grad = None
    y_ref = F.conv3d(x, conv.weight, conv.bias, padding=1)
    y_ref.backward(grad)
    expected = [y_ref.detach(), x.grad, conv.weight.grad] + ([conv.bias.grad] if bias else [])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_falls_back_where_it_does_not_apply():
    conv = fastconv.Conv3d(2, 2, 3, padding=1)
    assert not fastconv.applies(conv, torch.randn(1, 2, 5, 4, 4))  # odd depth
    assert not fastconv.applies(conv, torch.randn(1, 2, 4, 4, 4, dtype=torch.float64))
    assert not fastconv.applies(fastconv.Conv3d(2, 2, 3, stride=2), torch.randn(1, 2, 4, 4, 4))
    assert not fastconv.applies(torch.nn.Conv3d(2, 2, 3, padding=1), torch.randn(1, 2, 4, 4, 4))  # plain layer
    x = torch.randn(1, 2, 5, 4, 4)
    torch.testing.assert_close(conv(x), F.conv3d(x, conv.weight, conv.bias, padding=1))
    with speedups.off("fastconv"):
        plain = fastconv.Conv3d(2, 2, 3, padding=1)  # built with the speed-up off: PyTorch's path for good
    assert not plain.fastconv and "fastconv=False" in repr(plain)
    assert not fastconv.applies(plain, torch.randn(1, 2, 4, 4, 4))
    assert conv.fastconv and fastconv.applies(conv, torch.randn(1, 2, 4, 4, 4))


def test_model_training_step_unchanged():
    """One forward+backward of a small Attention U-Net: the same loss and gradients either way.

    Compared: the logits and the gradients of every parameter the loss reaches without crossing a
    max-pooling (decoder, gates, heads). Encoder gradients cross max-pooling, whose backward sends
    each window's gradient to its largest input; near-ties there may resolve differently under
    float32 rounding of either path (a valid subgradient each time), so they are not compared.
    """
    torch.manual_seed(0)
    model = AttentionUNet(filters=(4, 8, 16, 32, 64))
    with speedups.off("fastconv"):
        plain = AttentionUNet(filters=(4, 8, 16, 32, 64))
    plain.load_state_dict(model.state_dict())  # the same weights, PyTorch's convolution path
    x = torch.randn(1, 1, 32, 32, 16)
    results = []
    for m in (model, plain):
        logits = m(x)
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters()
                 if not n.startswith(("encoder", "center", "gating_signal")) and not n.endswith(".bias")}
        results.append((logits.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    assert len(results[0][1]) > 30
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-3, atol=1e-6, msg=name)
