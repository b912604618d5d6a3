"""SE's rescale after a BatchNorm, without keeping the BatchNorm's output for backward.

``SELayer`` computes ``y = x * w(mean(x))``. Autograd keeps ``x``, a full-size copy of
the block output, only for ``dL/dw = sum(dL/dy * x)``. When ``x = bn(z)``, ``x`` is a
per-channel affine map of ``z``, which the BatchNorm keeps anyway; so

    sum(g * x) = gamma * sum(g * zhat) + beta * sum(g),  zhat = (z - mean) * rstd,

and ``x`` can be rescaled in place. ``mean`` and ``rstd`` are the statistics the
BatchNorm used: in training, read from its autograd node (not recomputed); the
BatchNorm is not run again, so its running statistics update once per step. The two
sums take one pass over ``g`` and ``z``; one more pass writes the input gradient.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

Excite = Callable[[torch.Tensor], torch.Tensor]
Stats = Tuple[torch.Tensor, torch.Tensor]


def used_batch_stats(norm: _BatchNorm) -> bool:
    """Whether ``norm`` normalises with the batch's statistics (as ``_BatchNorm.forward`` decides)."""
    return norm.training or (norm.running_mean is None and norm.running_var is None)


def saved_stats(x: torch.Tensor) -> Optional[Stats]:
    """``(mean, rstd)`` that a CPU/CUDA BatchNorm saved for backward when it computed ``x``, or None."""
    node = x.grad_fn
    if type(node).__name__ != 'NativeBatchNormBackward0':
        return None
    mean, rstd = node._saved_result1, node._saved_result2  # save_mean, save_invstd
    return (mean, rstd) if mean.numel() == x.shape[1] == rstd.numel() else None


def accumulation(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums are kept in: float32, or float64 for float64 tensors."""
    return torch.promote_types(dtype, torch.float32)


def norm_stats(norm: _BatchNorm, z: torch.Tensor) -> Stats:
    """``(mean, rstd)``, shaped ``(C,)``, with which ``norm`` normalises ``z``."""
    acc = accumulation(z.dtype)
    if used_batch_stats(norm):
        flat = z.flatten(2)
        mean = flat.mean(-1, dtype=acc).mean(0)
        mean_sq = torch.linalg.vector_norm(flat, dim=-1, dtype=acc).square().mean(0) / flat.shape[-1]
        var = (mean_sq - mean.square()).clamp_min(0)
    else:
        mean, var = norm.running_mean.to(acc, copy=True), norm.running_var.to(acc)
    return mean, torch.rsqrt(var + norm.eps)


@torch.no_grad()  # the caller routes the gradient of the mean itself (RescaleAfterNorm)
def squeeze_after_norm(x: torch.Tensor, norm: _BatchNorm, stats: Optional[Stats],
                       source: Optional[tuple]) -> torch.Tensor:
    """``x.mean(spatial)`` for ``x = norm(z)``, read through ``z = conv(h)`` where that reads less.

    ``source`` is ``(conv, h, z)`` of a pointwise conv (see ``SELayer.squeeze_from``). The mean
    of a 1x1 convolution is the convolution of the mean, so the mean of the block output comes
    from ``h``, which has a quarter of the channels in a bottleneck, and the norm's statistics.
    In ResNet-50 at batch 8 and 224x224, stages 1 and 2 squeeze so (stage 1: 0.13 ms instead
    of 0.97 ms at one thread); in stages 3 and 4 conv3's weight outweighs the map.
    """
    if source is not None and stats is not None:
        conv, h = source[0], source[1]
        (n, c), c_in, length = x.shape[:2], h.shape[1], x[0, 0].numel()
        # Elements read either way; a weight element of this thin matrix product costs about 8 map elements.
        if n * length * (c - c_in) > 8 * c * c_in and h.dtype == x.dtype == conv.weight.dtype:
            h_mean = h.flatten(2).mean(-1)
            z_mean = F.linear(h_mean, conv.weight.flatten(1), conv.bias)
            mean, rstd = stats
            zhat = (z_mean - mean) * rstd
            pooled = zhat if norm.weight is None else zhat * norm.weight
            return (pooled if norm.bias is None else pooled + norm.bias).to(x.dtype)
    return x.flatten(2).mean(-1)


def channel_sums(g: torch.Tensor, z: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor) -> Stats:
    """Per sample and channel, ``sum(g * (z - mean) * rstd)`` and ``sum(g)`` over the spatial dims."""
    n, c = g.shape[:2]
    if g.device.type == 'cpu' and g.dtype == z.dtype == torch.float32 and g.is_contiguous() and z.is_contiguous():
        # BatchNorm's backward on a (1, N*C, L) view makes both sums per (n, c) in one pass:
        # about 3x faster on CPU than a batched dot product plus a sum.
        _, gz, gs = torch.ops.aten.native_batch_norm_backward(
            g.view(1, n * c, -1), z.view(1, n * c, -1), None, None, None, mean.float().repeat(n),
            rstd.float().repeat(n), True, 0.0, [False, True, True])
        return gz.view(n, c), gs.view(n, c)
    acc = accumulation(g.dtype)
    gf, zf = g.flatten(2).to(acc), z.flatten(2).to(acc)
    gs = gf.sum(-1)
    return (torch.linalg.vecdot(gf, zf) - mean * gs) * rstd, gs


class RescaleAfterNorm(torch.autograd.Function):
    """``x * excite(mean(x))`` in place, for ``x = norm(z)``; params are the excitation's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, z: torch.Tensor, pooled: torch.Tensor, stats: Optional[Stats],
                norm: _BatchNorm, excite: Excite, *params: torch.Tensor) -> torch.Tensor:
        pooled = pooled.detach().requires_grad_()
        with torch.enable_grad():
            w = excite(pooled)  # a small graph over (pooled, params), kept for backward
        ctx.pooled, ctx.w, ctx.params = pooled, w, params
        ctx.norm, ctx.batch_stats, ctx.stats = norm, used_batch_stats(norm), stats  # None: recomputed
        ctx.save_for_backward(z)
        ctx.mark_dirty(x)
        return x.mul_(w.detach().view(w.shape + (1,) * (x.dim() - 2)))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        norm = ctx.norm
        if ctx.stats is None:
            training = norm.training
            norm.training = ctx.batch_stats
            try:
                ctx.stats = norm_stats(norm, z)
            finally:
                norm.training = training
        g_zhat, g_sum = channel_sums(grad, z, *ctx.stats)
        gamma = 1.0 if norm.weight is None else norm.weight.detach().to(g_zhat.dtype)
        beta = 0.0 if norm.bias is None else norm.bias.detach().to(g_zhat.dtype)
        grad_w = (gamma * g_zhat + beta * g_sum).to(ctx.w.dtype)  # sum(grad * x), per (n, c)
        grad_pooled, *grad_params = torch.autograd.grad(ctx.w, (ctx.pooled, *ctx.params), grad_w)
        shape = grad_w.shape + (1,) * (grad.dim() - 2)
        spatial = grad[0, 0].numel()
        grad_x = torch.addcmul(grad_pooled.view(shape) / spatial, grad, ctx.w.detach().view(shape))
        return (grad_x, None, None, None, None, None, *grad_params)


class NormInput:
    """Forward hook of a BatchNorm that tells the SE layer after it what the norm's input was.

    ``SELayer.follow(norm)`` registers it; a class (not a closure) so that
    ``copy.deepcopy`` of a model maps it to the copied SE layer.
    """

    def __init__(self, se: nn.Module) -> None:
        self.se = se

    def __call__(self, norm: nn.Module, args: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.se.pending = (norm, args[0], output)


class ConvInput:
    """Forward hook of a pointwise conv before the followed norm: keeps ``(conv, input, output)``.

    ``SELayer.squeeze_from(conv)`` registers it (see :func:`squeeze_after_norm`).
    """

    def __init__(self, se: nn.Module) -> None:
        self.se = se

    def __call__(self, conv: nn.Module, args: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.se.source = (conv, args[0], output)


def is_pointwise(conv: nn.Module) -> bool:
    """Whether ``conv`` is a 1x1 convolution with stride 1, no padding and one group."""
    return (isinstance(conv, nn.modules.conv._ConvNd) and not conv.transposed and conv.groups == 1
            and all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride)
            and (conv.padding == 'valid' or all(p == 0 for p in conv.padding)))
