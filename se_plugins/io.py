"""Atomic checkpoint files: a reader never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

import torch

from .convert import StateDict, unwrap

PathLike = Union[str, Path]


def write_atomic(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """``write(file)`` to a temporary file beside ``path``, then ``os.replace`` it into place.

    A reader sees the old file or the new one, never half of one; on failure nothing is
    left. The file gets the permissions an ordinary ``open`` would give it (``mkstemp``
    makes it owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def save_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; a ``.safetensors`` path takes a flat dict of tensors."""
    if Path(path).suffix == '.safetensors':
        from safetensors.torch import save
        return write_atomic(path, lambda f: f.write(save({k: v.contiguous() for k, v in obj.items()})))
    return write_atomic(path, lambda f: torch.save(obj, f))


def load_state_dict(path: PathLike) -> StateDict:
    """The state dict in a ``.pth``/``.pt``/``.safetensors`` file of timm, torchvision or MMPretrain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(path)
    return unwrap(torch.load(path, map_location='cpu', weights_only=True))
