"""The attention gate computes exactly the paper's equation and starts uniform."""
import pytest
import torch
import torch.nn.functional as F

from aunet import AttentionGate, speedups
from aunet.gate import ALPHA_INIT, GatedSkip

pytestmark = pytest.mark.usefixtures("speedups_on")  # tests/conftest.py


def equation(gate: AttentionGate, x: torch.Tensor, g: torch.Tensor):
    """A plain re-evaluation of the gate equation from the gate's own parameters."""
    dim = x.dim() - 2
    convf = F.conv2d if dim == 2 else F.conv3d
    mode = "bilinear" if dim == 2 else "trilinear"
    s = gate.subsample
    theta_x = convf(x, gate.W_x.weight, None, stride=s)  # W_x^T x, no bias
    phi_g = convf(g, gate.W_g.weight, gate.W_g.bias)  # W_g^T g + b_g
    phi_g = F.interpolate(phi_g, size=theta_x.shape[2:], mode=mode, align_corners=False)
    q = torch.relu(theta_x + phi_g)
    alpha = torch.sigmoid(convf(q, gate.psi.weight, gate.psi.bias))
    alpha = F.interpolate(alpha, size=x.shape[2:], mode=mode, align_corners=False)
    conv_w, bn = gate.W[0], gate.W[1]
    y = convf(alpha * x, conv_w.weight, conv_w.bias)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return y, alpha


def randomise(gate: AttentionGate) -> None:
    """Give psi and the biases random values so that alpha is not uniform."""
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.5)
        gate.W[1].running_mean.normal_(0, 0.1)
        gate.W[1].running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("dim,x_size,g_size", [(2, (20, 24), (10, 12)), (2, (16, 16), (5, 7)),
                                               (3, (8, 12, 10), (4, 6, 5)), (3, (8, 8, 8), (3, 3, 3))])
def test_gate_equals_equation(dim, x_size, g_size):
    torch.manual_seed(0)
    gate = AttentionGate(6, 10, inter_channels=5, dim=dim).eval()
    randomise(gate)
    x, g = torch.randn(2, 6, *x_size), torch.randn(2, 10, *g_size)
    y, alpha = gate(x, g)
    y_ref, alpha_ref = equation(gate, x, g)
    assert alpha.shape == (2, 1, *x_size)
    torch.testing.assert_close(alpha, alpha_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-6)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert alpha.std() > 0.01  # the randomised gate really attends


@pytest.mark.parametrize("dim", [2, 3])
def test_alpha_uniform_at_init(dim):
    torch.manual_seed(1)
    gate = AttentionGate(8, 16, dim=dim)
    for scale in (0.1, 1.0, 100.0):
        x = scale * torch.randn(2, 8, *(16,) * dim)
        g = scale * torch.randn(2, 16, *(8,) * dim)
        _, alpha = gate(x, g)
        assert torch.all(alpha == ALPHA_INIT)


def test_every_gate_parameter_gets_gradient_within_two_steps():
    torch.manual_seed(2)
    gate = AttentionGate(4, 8, dim=3)
    opt = torch.optim.Adam(gate.parameters(), lr=1e-2)
    x, g = torch.randn(2, 4, 8, 8, 8), torch.randn(2, 8, 4, 4, 4)
    target = torch.randn(2, 4, 8, 8, 8)
    seen = {name: False for name, _ in gate.named_parameters()}
    for _ in range(2):
        opt.zero_grad()
        y, _ = gate(x, g)
        F.mse_loss(y, target * x.abs()).backward()  # a target that rewards non-uniform gating
        for name, p in gate.named_parameters():
            seen[name] |= bool(p.grad is not None and p.grad.abs().max() > 1e-8)
        opt.step()
    assert all(seen.values()), [n for n, ok in seen.items() if not ok]


def test_bad_dim():
    with pytest.raises(ValueError, match="dim"):
        AttentionGate(4, 4, dim=4)


@pytest.mark.parametrize("dim,gates", [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_gated_skip_eval_mode_computes_the_layers_as_written(dim, gates):
    """Eval mode's folded weights (one 1x1 conv) give what the gates, concatenation and merge give."""
    torch.manual_seed(0)
    skip = GatedSkip(6, 5, gates=gates, dim=dim)
    with torch.no_grad():
        for p in skip.parameters():
            p.normal_(0, 0.5)
        for bn in (m for m in skip.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.normal_(0, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
    size = (8, 6, 4)[:dim]
    x, g = torch.randn(2, 6, *size), torch.randn(2, 5, *(s // 2 for s in size))
    skip.eval()
    y, alpha = skip(x, g)
    outputs, alphas = zip(*(gate(x, g) for gate in skip.gates))  # each gate: W(alpha * x), alpha
    expected = skip.merge(torch.cat(outputs, dim=1))
    assert alphas[0].std() > 0.05 and expected.std() > 0.1  # a non-trivial case
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alpha, torch.stack(alphas).mean(0))
    with speedups.off("fold_gates"):
        plain = GatedSkip(6, 5, gates=gates, dim=dim)
    plain.load_state_dict(skip.state_dict())
    assert skip.fold_gates and not plain.fold_gates
    torch.testing.assert_close(plain.eval()(x, g)[0], expected, rtol=0, atol=0)  # the layers as written
    skip.train()  # training normalises with the batch's statistics: the layers as written
    y_train, _ = skip(x, g)
    outputs = [gate(x, g)[0] for gate in skip.gates]
    torch.testing.assert_close(y_train, skip.merge(torch.cat(outputs, dim=1)))
    assert not torch.allclose(y_train, y, atol=1e-3)
