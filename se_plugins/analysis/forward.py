"""The one line for a model's forward pass that fails on the input size a flag gave (complexity.py, benchmark.py)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..cli import InputError, describe

__all__ = ['FORWARD_ERRORS', 'out_of_memory', 'size_error']

# What a forward pass raises for an input it cannot take: a feature map that shrinks to nothing
# (RuntimeError), a size the model asserts on (timm's ViTs), a batch of one in training (ValueError), no memory.
FORWARD_ERRORS = (AssertionError, RuntimeError, ValueError)


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed (CPU or CUDA)."""
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and any(text in str(err) for text in ("can't allocate", 'out of memory')))


def size_error(err: BaseException, given: str, size: int, name: str, model: Optional[nn.Module] = None,
               batch: int = 1) -> InputError:
    """The InputError for ``err``, raised by ``model`` (called ``name``) on ``batch`` images of ``size`` x ``size``.

    Args:
        err: What the forward pass (or the allocation of its input) raised.
        given: The flags that set the input, as the message starts: ``'--input-size 32'``.
        size: The image size.
        name: The model, as the user named it.
        model: The model (a timm model's ``pretrained_cfg`` tells the size it is made for).
        batch: The batch size.

    >>> print(size_error(RuntimeError("DefaultCPUAllocator: can't allocate memory"), '--input-size 65536', 65536,
    ...                  'resnet50'))
    --input-size 65536: too large, the memory ran out (1x3x65536x65536 inputs alone take 48 GiB); give a smaller size
    """
    if out_of_memory(err):
        gib = batch * 3 * size * size * 4 / 2**30
        return InputError(f'{given}: too large, the memory ran out ({batch}x3x{size}x{size} inputs alone '
                          f'take {gib:.3g} GiB); give a smaller size')
    made_for = (getattr(model, 'pretrained_cfg', None) or {}).get('input_size')
    if isinstance(err, AssertionError) and made_for:
        right = f'give the size it is made for ({made_for[-1]})'
    else:
        right = 'give a larger size'
    return InputError(f'{given}: {name} cannot run on a {size}x{size} image '
                      f'({type(err).__name__}: {describe(err)}); {right}')
