"""Exact x2 (bi/tri)linear upsampling, faster on the CPU: the same function as `F.interpolate`.

Why this exists. The decoder doubles every feature map with trilinear upsampling
(`align_corners=False`). PyTorch's CPU kernel computes each output voxel from its 8 neighbours with
per-voxel index and weight arithmetic; measured here (benchmarks/, 2 cores) it took about 10 % of a
160x160x96 training step. At a scale of exactly 2 the weights are constants, and trilinear
interpolation is separable, so the same numbers come from three one-axis passes.

One axis. Output sample o of an axis with n input samples sits at source position
(o + 0.5) / 2 - 0.5, clamped to [0, n - 1]. So for input index i:

    out[2i]     = 0.75 x[i] + 0.25 x[i-1]      (out[0]      = x[0],   clamped)
    out[2i + 1] = 0.75 x[i] + 0.25 x[i+1]      (out[2n - 1] = x[n-1], clamped)

Each pass writes the even and odd outputs into strided views of one tensor; the passes run from
the last axis to the first, so the largest pass writes whole contiguous planes. The backward pass is
the transpose: each input sample collects 0.75 of its own two outputs and 0.25 of the two outer
neighbours, plus the clamped edges' extra 0.25. Results equal F.interpolate's to float rounding
(tests/test_upsample.py). `aunet.layers.interpolate` takes this path only for float32 CPU tensors
(on CUDA PyTorch's kernel is fast) and only in modules built with the speed-up on (`aunet.speedups`).
"""
from __future__ import annotations

import torch

from aunet import speedups


def applies(t: torch.Tensor, size: tuple[int, ...]) -> bool:
    """Whether `upsample2x` should resample t (B, C, *S) to `size`: a float32 CPU tensor and size == 2 S."""
    return speedups.cpu_float32(t) and t.dim() in (4, 5) and tuple(size) == tuple(2 * s for s in t.shape[2:])


def _double(t: torch.Tensor, axis: int) -> torch.Tensor:
    """Linear x2 upsampling of t along one axis (align_corners=False)."""
    n = t.shape[axis]
    out = t.new_empty(t.shape[:axis] + (2 * n,) + t.shape[axis + 1:])
    pairs = out.unflatten(axis, (n, 2))  # (..., n, 2, ...): out[2i] and out[2i + 1]
    even, odd = pairs.select(axis + 1, 0), pairs.select(axis + 1, 1)
    torch.lerp(t.narrow(axis, 1, n - 1), t.narrow(axis, 0, n - 1), 0.25, out=even.narrow(axis, 1, n - 1))
    torch.lerp(t.narrow(axis, 0, n - 1), t.narrow(axis, 1, n - 1), 0.25, out=odd.narrow(axis, 0, n - 1))
    even.narrow(axis, 0, 1).copy_(t.narrow(axis, 0, 1))
    odd.narrow(axis, n - 1, 1).copy_(t.narrow(axis, n - 1, 1))
    return out


def _double_transposed(grad: torch.Tensor, axis: int) -> torch.Tensor:
    """The adjoint of `_double`: the gradient with respect to its input."""
    n = grad.shape[axis] // 2
    pairs = grad.unflatten(axis, (n, 2))
    even, odd = pairs.select(axis + 1, 0), pairs.select(axis + 1, 1)
    out = torch.add(even, odd).mul_(0.75)  # each sample's own two outputs
    out.narrow(axis, 0, n - 1).add_(even.narrow(axis, 1, n - 1), alpha=0.25)  # out[2i + 2] reads x[i]
    out.narrow(axis, 1, n - 1).add_(odd.narrow(axis, 0, n - 1), alpha=0.25)  # out[2i - 1] reads x[i]
    out.narrow(axis, 0, 1).add_(even.narrow(axis, 0, 1), alpha=0.25)  # clamped edges
    out.narrow(axis, n - 1, 1).add_(odd.narrow(axis, n - 1, 1), alpha=0.25)
    return out


class _Upsample2x(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        ctx.dims = t.dim()
        for axis in range(t.dim() - 1, 1, -1):  # the last (contiguous) axis first, on the smallest tensor
            t = _double(t, axis)
        return t  # (B, C, *2S)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        for axis in range(2, ctx.dims):  # the forward passes in reverse order
            grad = _double_transposed(grad.contiguous(), axis)
        return grad


def upsample2x(t: torch.Tensor) -> torch.Tensor:
    """(Bi/tri)linear x2 upsampling of t (B, C, *S) to (B, C, *2S), as F.interpolate(align_corners=False)."""
    return _Upsample2x.apply(t)
