"""SE's rescale after a BatchNorm, without keeping the BatchNorm's output for backward.

``SELayer`` computes ``y = x * w(mean(x))``. Autograd keeps ``x``, a full-size copy of
the block output, only for ``dL/dw = sum(dL/dy * x)``. When ``x = bn(z)``, ``x`` is a
per-channel affine map of ``z``, which the BatchNorm keeps anyway; so

    sum(g * x) = a * sum(g * z) + b * sum(g),  with x = a * z + b per channel,

and ``x`` can be rescaled in place. The BatchNorm is not run again (its running
statistics update once per step). One backward pass also replaces autograd's separate
rescale, pooling and gradient-accumulation passes.
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

Excite = Callable[[torch.Tensor], torch.Tensor]


def norm_affine(norm: _BatchNorm, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(a, b)`` with ``norm(z) == a * z + b``, in float32, shaped ``(C,)``.

    In training mode these come from the batch statistics of ``z`` (two cheap
    per-sample reductions, then a combination over the batch), as BatchNorm uses them.
    """
    use_batch_stats = norm.training or norm.running_mean is None
    if use_batch_stats:
        flat = z.flatten(2)
        mean = flat.mean(-1, dtype=torch.float32).mean(0)
        mean_sq = torch.linalg.vector_norm(flat, dim=-1, dtype=torch.float32).square().mean(0) / flat.shape[-1]
        var = (mean_sq - mean.square()).clamp_min(0)
    else:
        mean, var = norm.running_mean.float(), norm.running_var.float()
    a = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        a = a * norm.weight.float()
    b = -mean * a
    if norm.bias is not None:
        b = b + norm.bias.float()
    return a, b


class RescaleAfterNorm(torch.autograd.Function):
    """``x * excite(mean(x))`` in place, for ``x = norm(z)``; params are the excitation's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, z: torch.Tensor, norm: _BatchNorm, excite: Excite,
                *params: torch.Tensor) -> torch.Tensor:
        pooled = x.flatten(2).mean(-1).detach().requires_grad_()
        with torch.enable_grad():
            w = excite(pooled)  # a small graph over (pooled, params), kept for backward
        ctx.pooled, ctx.w, ctx.params = pooled, w, params
        ctx.norm, ctx.training = norm, norm.training
        ctx.affine = None if norm.training else norm_affine(norm, z)  # running stats may change later
        ctx.save_for_backward(z)
        ctx.mark_dirty(x)
        return x.mul_(w.detach().view(w.shape + (1,) * (x.dim() - 2)))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        if ctx.affine is None:
            training = ctx.norm.training
            ctx.norm.training = ctx.training
            try:
                ctx.affine = norm_affine(ctx.norm, z)
            finally:
                ctx.norm.training = training
        a, b = ctx.affine
        g, zf = grad.flatten(2), z.flatten(2)
        dot = torch.bmm(g.reshape(-1, 1, g.shape[-1]), zf.reshape(-1, zf.shape[-1], 1)).view(g.shape[:2])
        grad_w = (a * dot + b * g.sum(-1, dtype=torch.float32)).to(ctx.w.dtype)
        grad_pooled, *grad_params = torch.autograd.grad(ctx.w, (ctx.pooled, *ctx.params), grad_w)
        shape = grad_w.shape + (1,) * (grad.dim() - 2)
        grad_x = torch.addcmul(grad_pooled.view(shape) / g.shape[-1], grad, ctx.w.detach().view(shape))
        return (grad_x, None, None, None, *grad_params)


class NormInput:
    """Forward hook of a BatchNorm that tells the SE layer after it what the norm's input was.

    ``SELayer.follow(norm)`` registers it; a class (not a closure) so that
    ``copy.deepcopy`` of a model maps it to the copied SE layer.
    """

    def __init__(self, se: nn.Module) -> None:
        self.se = se

    def __call__(self, norm: nn.Module, args: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.se.pending = (norm, args[0], output)
