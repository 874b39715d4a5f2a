"""Dimension-agnostic building blocks (2D or 3D) shared by the gate and the U-Nets."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aunet import fastconv, speedups, upsample


def conv(dim: int, in_channels: int, out_channels: int, kernel_size: int = 3, **kwargs) -> nn.Module:
    """A Conv2d or Conv3d (aunet.fastconv's: nn.Conv3d with a faster CPU path); 'same' padding for odd kernels."""
    if kwargs.get("stride", 1) == 1 and kernel_size % 2 == 1:
        kwargs.setdefault("padding", kernel_size // 2)
    return (nn.Conv2d if dim == 2 else fastconv.Conv3d)(in_channels, out_channels, kernel_size, **kwargs)


def batchnorm(dim: int, channels: int) -> nn.Module:
    """A BatchNorm2d or BatchNorm3d."""
    return (nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d)(channels)


def interpolate(t: torch.Tensor, size: torch.Size | tuple[int, ...], fast: bool = False) -> torch.Tensor:
    """(Bi/tri)linear resampling of t (B, C, *S) to `size`; a no-op when the size already matches.

    fast: let aunet.upsample compute integer factors on the CPU (modules pass the choice they were built with).
    """
    if tuple(t.shape[2:]) == tuple(size):
        return t  # the common case in the U-Net: g already lives on W_x x's grid
    if fast and upsample.applies(t, size):
        return upsample.upsample(t, size)  # the same numbers as below, several times faster on the CPU
    else:
        mode = "bilinear" if t.dim() == 4 else "trilinear"
        return F.interpolate(t, size=tuple(size), mode=mode, align_corners=False)  # (B, C, *size)


class ConvBlock(nn.Sequential):
    """(3x3(x3) conv + BN + ReLU) x 2: one level of the U-Net encoder or decoder."""

    def __init__(self, dim: int, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv(dim, in_channels, out_channels), batchnorm(dim, out_channels), nn.ReLU(inplace=True),
            conv(dim, out_channels, out_channels), batchnorm(dim, out_channels), nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Decoder level: x2 (bi/tri)linear upsampling of the coarse features, concatenation, ConvBlock."""

    def __init__(self, dim: int, coarse_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.conv = ConvBlock(dim, coarse_channels + skip_channels, skip_channels)
        self.fast_upsample = speedups.enabled("upsample")  # chosen once, when the block is built

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = interpolate(coarse, skip.shape[2:], fast=self.fast_upsample)  # (B, C_coarse, *S_skip)
        return self.conv(torch.cat([skip, up], dim=1))  # (B, C_skip, *S_skip)
