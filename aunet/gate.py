"""The additive, grid-based attention gate of Attention U-Net.

Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018, eq. (1)-(2):

    q     = ReLU( W_x^T x + W_g^T g + b_g )        # (B, F_int, *g-grid)
    alpha = sigmoid( psi^T q + b_psi )             # (B, 1, *g-grid), resampled to x's grid
    x_hat = alpha * x                              # then the output transform W (1x1 conv + BN)

x are the skip features of one encoder level (F_l channels), g is the gating signal from a
coarser level (F_g channels). W_x is a strided convolution with no bias that brings x down to
g's grid; W_g (with bias b_g) and psi (with bias b_psi) are 1x1 convolutions.

Initialisation. The paper initialises the gate biases "with a constant value to start with a
uniform attention distribution across all pixels". We make that exact: psi's weights start at 0
and b_psi at 0, so alpha = sigmoid(0) = 0.5 at every voxel for any input. Why 0.5: the output
transform ends in BatchNorm, which removes any uniform scale of x_hat, so every uniform alpha
passes the features through identically; 0.5 is where the sigmoid is steepest (slope 0.25), so the
gate learns fastest from there. With psi = 0 the first optimiser step gives psi and b_psi their
gradients; from the second step on W_x, W_g and b_g receive gradients too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aunet import speedups
from aunet.layers import batchnorm, conv, interpolate

ALPHA_INIT = 0.5  # sigmoid(b_psi) at initialisation; see the module docstring


class AttentionGate(nn.Module):
    """Additive attention gate: returns the gated skip features and the attention map alpha."""

    def __init__(
        self,
        in_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        dim: int = 3,
        subsample: int = 2,
    ) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"AttentionGate dim={dim!r} is not supported; expected 2 or 3.")
        inter_channels = inter_channels or in_channels  # the paper's CT models use F_int = F_l
        self.dim, self.subsample = dim, subsample
        self.W_x = conv(dim, in_channels, inter_channels, kernel_size=subsample, stride=subsample, bias=False)
        self.W_g = conv(dim, gating_channels, inter_channels, kernel_size=1)  # its bias is b_g
        self.psi = conv(dim, inter_channels, 1, kernel_size=1)  # its bias is b_psi
        self.W = nn.Sequential(conv(dim, in_channels, in_channels, kernel_size=1), batchnorm(dim, in_channels))
        self.fast_upsample = speedups.enabled("upsample")  # chosen once, when the gate is built
        self.reset_gate()

    def reset_gate(self) -> None:
        """Start from a uniform attention map alpha = ALPHA_INIT (the paper's initialisation)."""
        nn.init.zeros_(self.psi.weight)
        b_psi = torch.logit(torch.tensor(ALPHA_INIT)).item()
        nn.init.constant_(self.psi.bias, b_psi)
        nn.init.zeros_(self.W_g.bias)  # b_g

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """alpha for skip features x (B, F_l, *S) and gating signal g (B, F_g, *S_g): (B, 1, *S)."""
        theta_x = self.W_x(x)  # (B, F_int, *S/subsample)
        phi_g = interpolate(self.W_g(g), theta_x.shape[2:], fast=self.fast_upsample)  # (B, F_int, *S/subsample)
        q = F.relu(theta_x + phi_g, inplace=True)
        alpha = torch.sigmoid(self.psi(q))  # (B, 1, *S/subsample)
        return interpolate(alpha, x.shape[2:], fast=self.fast_upsample)  # (B, 1, *S)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate x by g: returns (W(alpha * x), alpha)."""
        alpha = self.attention(x, g)
        return self.W(alpha * x), alpha  # alpha broadcasts over the F_l channels


class GatedSkip(nn.Module):
    """One or more attention gates on one skip connection, merged by a 1x1 conv + BN + ReLU.

    The released 3D models run two gates per level; their outputs are concatenated and merged back
    to F_l channels. The returned alpha is the mean of the gates' maps, which is what one sees
    when asking "where does this level look".

    In eval mode every BatchNorm is a fixed affine map, so everything after alpha is linear in x
    per voxel: gate i's W_i(alpha_i * x) = alpha_i * (P_i x) + c_i (a 1x1 conv commutes with the
    per-voxel scalar alpha_i), and the merge conv + BN turns the concatenation into a sum. The
    merged features are therefore ReLU(sum_i alpha_i * (Q_i x) + d), with Q_i = s_m M_i s_i A_i
    composed from the layers' weights (`folded`; A_i: gate i's W conv, s_i its BatchNorm scales,
    M_i: the block of the merge conv that reads gate i, s_m: the merge BatchNorm's scales). Eval
    mode computes that (`fold_gates`): one 1x1 conv of x instead of one per gate plus the merge, the
    same function to float rounding (tests/test_gate.py), for float32 CPU inputs of a GatedSkip built
    with the speed-up on (`aunet.speedups`). Training, CUDA and a GatedSkip built with it off use the
    layers as written (in training BatchNorm normalises with the batch's own statistics).
    """

    def __init__(self, in_channels: int, gating_channels: int, gates: int = 2, dim: int = 3) -> None:
        super().__init__()
        if gates not in (1, 2):
            raise ValueError(f"gates_per_level={gates!r} is not supported; expected 1 or 2.")
        self.gates = nn.ModuleList(AttentionGate(in_channels, gating_channels, dim=dim) for _ in range(gates))
        self.merge = nn.Sequential(
            conv(dim, gates * in_channels, in_channels, kernel_size=1),
            batchnorm(dim, in_channels),
            nn.ReLU(inplace=True),
        )
        self.fold_gates = speedups.enabled("fold_gates")  # chosen once, when the module is built

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (merged gated features (B, F_l, *S), mean alpha (B, 1, *S))."""
        alphas = [gate.attention(x, g) for gate in self.gates]  # each (B, 1, *S)
        alpha = alphas[0] if len(alphas) == 1 else torch.stack(alphas).mean(0)
        in_eval = not any(m.training for m in self.modules())  # BatchNorm is then a fixed affine map
        if self.fold_gates and in_eval and speedups.cpu_float32(x):
            return self.folded_merge(x, alphas), alpha  # the same numbers as below, one 1x1 conv
        else:
            outputs = [gate.W(a * x) for gate, a in zip(self.gates, alphas)]  # W(alpha * x) per gate
            return self.merge(torch.cat(outputs, dim=1)), alpha  # (B, F_l, *S)

    def folded_merge(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        """Eval mode's merged features ReLU(sum_i alpha_i * (Q_i x) + d), from the `folded` weights."""
        Q, d = self.folded()
        conv_nd = F.conv2d if x.dim() == 4 else F.conv3d
        Qx = conv_nd(x, Q.view(*Q.shape, *(1,) * (x.dim() - 2)))  # (B, gates * F_l, *S): Q_i x stacked
        merged = None
        for a, Q_i_x in zip(alphas, Qx.chunk(len(alphas), dim=1)):
            merged = Q_i_x * a if merged is None else merged.addcmul_(Q_i_x, a)  # sum_i alpha_i Q_i x
        return merged.add_(d.view(1, -1, *(1,) * (x.dim() - 2))).relu_()  # (B, F_l, *S)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval mode's composed weights: Q (gates * F_l, F_l), rows i*F_l.. are Q_i, and the bias d (F_l,)."""
        def affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:  # eval BatchNorm = s * z + t
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            return s, bn.bias - s * bn.running_mean

        merge_conv, merge_bn = self.merge[0], self.merge[1]
        s_m, t_m = affine(merge_bn)
        M = merge_conv.weight.flatten(1)  # (F_l, gates * F_l)
        F_l = M.shape[0]
        Q, d = [], merge_conv.bias
        for i, gate in enumerate(self.gates):
            W_conv, W_bn = gate.W
            s_i, t_i = affine(W_bn)
            M_i = M[:, i * F_l:(i + 1) * F_l]
            Q.append(s_m[:, None] * (M_i @ (s_i[:, None] * W_conv.weight.flatten(1))))  # (F_l, F_l)
            d = d + M_i @ (s_i * W_conv.bias + t_i)
        return torch.cat(Q), s_m * d + t_m
