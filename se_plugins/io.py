"""Atomic checkpoint files: a reader never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Union

import torch

from .convert import StateDict, unwrap


def save_atomic(obj: Any, path: Union[str, Path]) -> None:
    """Write ``obj`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    ``.safetensors`` paths take a flat dict of tensors; anything else is ``torch.save``d.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    os.close(fd)
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in obj.items()}, tmp)
        else:
            torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_state_dict(path: Union[str, Path]) -> StateDict:
    """The state dict in a ``.pth``/``.pt``/``.safetensors`` file of timm, torchvision or MMPretrain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(path)
    return unwrap(torch.load(path, map_location='cpu', weights_only=True))
