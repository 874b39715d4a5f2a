"""A faster 3x3x3 convolution for small batches on the CPU: same function, same parameters.

Why this exists. On the CPU, PyTorch picks between oneDNN and a plain im2col ("slow_conv3d") kernel
with a heuristic tuned for 2D images, and oneDNN's weight gradient parallelises poorly over a
batch of one 3D volume. Measured here (benchmarks/, 2 cores), for the convolutions of the paper's
networks at batch 1, forward + backward of a single layer ran 1.5-6x slower than the same work
split into two half-volumes.

What it does, for a float32 CPU `Conv3d` with a 3x3x3 kernel, stride 1, padding 1 and an even depth:
- forward: oneDNN directly (`torch.mkldnn_convolution`), whatever the heuristic would choose;
- backward: each volume is cut along depth into two halves that carry one slice of halo each,
  stacked as a batch of 2B, so that one `convolution_backward` call computes the weight and bias
  gradients (sums over the halves are sums over the volume) and the input gradient of each half,
  whose halo slices are added back where the halves overlap.
The result equals `F.conv3d`'s to float32 rounding (tests/test_fastconv.py). Everything else
(CUDA, autocast, channels-last, other kernels) takes PyTorch's own path, and so does a layer built
with the speed-up off (`aunet.speedups`: AUNET_FAST=0, or built inside `speedups.off("fastconv")`).
"""
from __future__ import annotations

import torch
from torch import nn

from aunet import speedups

_ONES, _HALO = [1, 1, 1], [0, 1, 1]  # stride/padding/dilation 1; on the halves, no padding along depth


def applies(conv: nn.Conv3d, x: torch.Tensor) -> bool:
    """Whether the fast path handles this layer and input (the layer must have been built with it on)."""
    return (getattr(conv, "fastconv", False) and speedups.cpu_float32(x) and x.dim() == 5
            and x.shape[2] % 2 == 0 and x.is_contiguous()
            and conv.kernel_size == (3, 3, 3) and conv.stride == (1, 1, 1) and conv.padding == (1, 1, 1)
            and conv.dilation == (1, 1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


class _Conv3x3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]
        return torch.mkldnn_convolution(x, weight, bias, _ONES, _ONES, _ONES, 1)  # (B, C_out, D, H, W)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        B, C, D, H, W = x.shape
        h = D // 2
        # halves[:B] = depth slices -1..h of x, halves[B:] = slices h-1..D (slice -1 and D are the zero padding)
        halves = x.new_empty(2 * B, C, h + 2, H, W)
        halves[:B, :, 0].zero_()
        halves[:B, :, 1:] = x[:, :, :h + 1]
        halves[B:, :, :h + 1] = x[:, :, h - 1:]
        halves[B:, :, h + 1].zero_()
        grad_halves = torch.cat([grad[:, :, :h], grad[:, :, h:]])  # (2B, C_out, h, H, W)
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x_halves, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_halves, halves, weight, ctx.bias_sizes, _ONES, _HALO, _ONES, False, [0, 0, 0], 1,
            [need_x, need_w, need_b and ctx.bias_sizes is not None])
        grad_x = None
        if need_x:  # each half's own slices, plus the halo slice it shares with the other half
            grad_x = grad_x_halves.new_empty(B, C, D, H, W)
            grad_x[:, :, :h] = grad_x_halves[:B, :, 1:h + 1]
            grad_x[:, :, h:] = grad_x_halves[B:, :, 1:h + 1]
            grad_x[:, :, h - 1] += grad_x_halves[B:, :, 0]
            grad_x[:, :, h] += grad_x_halves[:B, :, h + 1]
        return grad_x, grad_w, grad_b


class Conv3d(nn.Conv3d):
    """`nn.Conv3d` that takes the fast path above when it applies (same parameters and state dict)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fastconv = speedups.enabled("fastconv")  # chosen once, when the layer is built

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if applies(self, x):  # self.fastconv, a float32 CPU input, a 3x3x3 kernel, ...
            return _Conv3x3x3.apply(x, self.weight, self.bias)  # oneDNN forward, two-half backward
        else:  # PyTorch's own: F.conv3d(x, weight, bias, stride, padding, dilation, groups)
            return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fastconv={self.fastconv}"
