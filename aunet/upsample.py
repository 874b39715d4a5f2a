"""Exact integer-factor (bi/tri)linear upsampling, faster on the CPU: the same function as `F.interpolate`.

Why this exists. The decoder doubles every feature map with trilinear upsampling
(`align_corners=False`), and the deep-supervision head enlarges its coarser maps 4x and 8x. PyTorch's
CPU kernel computes each output voxel from its 8 neighbours with per-voxel index and weight
arithmetic; measured here (benchmarks/, 2 cores) it took about 10 % of a 160x160x96 training step. At
an integer scale the weights are constants, and trilinear interpolation is separable, so the same
numbers come from one pass per axis.

One axis, factor s. Output sample o of an axis with n input samples sits at source position
(o + 0.5) / s - 0.5, clamped to [0, n - 1]. Writing o = s i + r (phase r = 0 .. s-1), that is
i + d_r with d_r = (r + 0.5) / s - 0.5, a constant of the phase. So

    out[s i + r] = (1 - |d_r|) x[i] + |d_r| x[i - 1]   for d_r < 0   (out[r]          = x[0],   clamped)
    out[s i + r] = (1 - d_r)   x[i] + d_r   x[i + 1]   for d_r > 0   (out[s(n-1) + r] = x[n-1], clamped)

e.g. s = 2: d = -0.25, +0.25, the familiar 0.75 / 0.25 weights. Each pass writes each phase into a
strided view of one tensor; the passes run from the last axis to the first, so the largest pass writes
whole contiguous planes. The backward pass is the transpose: each input sample collects (1 - |d_r|) of
its own s outputs and |d_r| of the neighbours' outputs that read it, plus what the clamped edges
read (in float32 for a bfloat16 gradient, rounded once at the end). Results equal F.interpolate's
to float rounding (tests/test_upsample.py).

`aunet.layers.interpolate` takes this path only for CPU tensors (on CUDA PyTorch's kernel is fast) and
only in modules built with the speed-up on (`aunet.speedups`): float32 tensors, and the bfloat16 ones
of a bfloat16 training step (`speedups.cpu_bf16`), which stay bfloat16 (under autocast
`F.interpolate` would compute and return float32: a cast each way per call). A channels-last input
gives a channels-last output.
"""
from __future__ import annotations

import torch

from aunet import speedups


def factors(t: torch.Tensor, size: tuple[int, ...]) -> tuple[int, ...] | None:
    """The integer factor of each spatial axis from t (B, C, *S) to `size`, or None when one is not an integer."""
    if len(size) != t.dim() - 2 or any(o % n for o, n in zip(size, t.shape[2:])):
        return None
    return tuple(o // n for o, n in zip(size, t.shape[2:]))


def applies(t: torch.Tensor, size: tuple[int, ...]) -> bool:
    """Whether `upsample` should resample t (B, C, *S) to `size`: a float32 (or bf16-step) CPU tensor, integer
    factors."""
    return (speedups.cpu_float32(t) or speedups.cpu_bf16(t)) and t.dim() in (4, 5) and factors(t, size) is not None


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    """channels-last when t is stored so (and is not also plainly contiguous, as a one-channel map is)."""
    channels_last = torch.channels_last_3d if t.dim() == 5 else torch.channels_last
    return channels_last if t.is_contiguous(memory_format=channels_last) and not t.is_contiguous() \
        else torch.contiguous_format


def _offsets(s: int) -> list[float]:
    """d_r = (r + 0.5) / s - 0.5 for each phase r: where output s i + r sits relative to input i."""
    return [(r + 0.5) / s - 0.5 for r in range(s)]


def _stretch(t: torch.Tensor, axis: int, s: int) -> torch.Tensor:
    """Linear upsampling of t by the integer s along one axis (align_corners=False)."""
    n = t.shape[axis]
    out = torch.empty(t.shape[:axis] + (s * n,) + t.shape[axis + 1:], dtype=t.dtype, device=t.device,
                      memory_format=_memory_format(t))
    phases = out.unflatten(axis, (n, s))  # (..., n, s, ...): out[s i + r]
    first, last = t.narrow(axis, 0, n - 1), t.narrow(axis, 1, n - 1)  # x[i] for i < n-1, x[i] for i > 0
    for r, d in enumerate(_offsets(s)):
        o = phases.select(axis + 1, r)
        if d < 0:  # between x[i-1] and x[i]; at i = 0 the clamped x[0]
            torch.lerp(last, first, -d, out=o.narrow(axis, 1, n - 1))
            o.narrow(axis, 0, 1).copy_(t.narrow(axis, 0, 1))
        elif d > 0:  # between x[i] and x[i+1]; at i = n-1 the clamped x[n-1]
            torch.lerp(first, last, d, out=o.narrow(axis, 0, n - 1))
            o.narrow(axis, n - 1, 1).copy_(t.narrow(axis, n - 1, 1))
        else:  # odd s, middle phase: x[i] itself
            o.copy_(t)
    return out


def _stretch_transposed(grad: torch.Tensor, axis: int, s: int) -> torch.Tensor:
    """The adjoint of `_stretch`: the gradient with respect to its input, summed in float32 (or float64)."""
    n = grad.shape[axis] // s
    phases = grad.unflatten(axis, (n, s))
    offsets = _offsets(s)
    first = phases.select(axis + 1, 0)
    out = torch.empty(first.shape, dtype=torch.promote_types(grad.dtype, torch.float32), device=grad.device,
                      memory_format=_memory_format(grad))
    torch.mul(first, 1 - abs(offsets[0]), out=out)  # each sample's own outputs ...
    for r in range(1, s):
        out.add_(phases.select(axis + 1, r), alpha=1 - abs(offsets[r]))
    for r, d in enumerate(offsets):  # ... and the neighbours' outputs that read it
        g = phases.select(axis + 1, r)
        if d < 0:  # out[s(i+1) + r] reads x[i]; out[r] is the clamped x[0]
            out.narrow(axis, 0, n - 1).add_(g.narrow(axis, 1, n - 1), alpha=-d)
            out.narrow(axis, 0, 1).add_(g.narrow(axis, 0, 1), alpha=-d)
        elif d > 0:  # out[s(i-1) + r] reads x[i]; out[s(n-1) + r] is the clamped x[n-1]
            out.narrow(axis, 1, n - 1).add_(g.narrow(axis, 0, n - 1), alpha=d)
            out.narrow(axis, n - 1, 1).add_(g.narrow(axis, n - 1, 1), alpha=d)
    return out


class _Upsample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
        ctx.scale, ctx.memory_format = scale, _memory_format(t)
        for axis in range(t.dim() - 1, 1, -1):  # the last (contiguous) axis first, on the smallest tensor
            if scale[axis - 2] > 1:
                t = _stretch(t, axis, scale[axis - 2])
        return t  # (B, C, *(scale * S))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        dtype = grad.dtype  # a bfloat16 gradient is summed in float32 and rounded once, at the end
        for axis in range(2, grad.dim()):  # the forward passes in reverse order
            if ctx.scale[axis - 2] > 1:
                grad = _stretch_transposed(grad.contiguous(memory_format=ctx.memory_format), axis, ctx.scale[axis - 2])
        return grad.to(dtype), None


def upsample(t: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(Bi/tri)linear upsampling of t (B, C, *S) to `size` (integer multiples of S), as
    F.interpolate(align_corners=False)."""
    scale = factors(t, size)
    if scale is None:
        raise ValueError(f"size {tuple(size)} is not an integer multiple of {tuple(t.shape[2:])} on every axis.")
    return _Upsample.apply(t, scale)


def upsample2x(t: torch.Tensor) -> torch.Tensor:
    """(Bi/tri)linear x2 upsampling of t (B, C, *S) to (B, C, *2S), as F.interpolate(align_corners=False)."""
    return upsample(t, tuple(2 * s for s in t.shape[2:]))
