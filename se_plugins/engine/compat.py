"""Targeted fixes for mmengine 0.10.7 on current PyTorch, applied by :func:`setup`.

Nothing here runs at ``import se_plugins``: the tools call :func:`setup` once, before they
build the Runner. Each fix says which mmengine function it works around and why.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Callable, List, Optional
from unittest import mock

import torch
from mmengine.config import Config

from ..io import write_atomic


def history_buffer_method(owner: type, name: str) -> Callable[..., Any]:
    """``getattr`` as mmengine checkpoints use it, limited to ``HistoryBuffer``'s public methods.

    ``HistoryBuffer.__getstate__`` stores its statistics methods (``min``, ``max``, ``current``,
    ``mean``), which pickle as ``getattr(HistoryBuffer, 'min')``. Allowing ``builtins.getattr``
    itself would give a checkpoint any attribute of any allowed object; this stand-in is
    registered under that name instead.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    from mmengine.logging import HistoryBuffer

    if owner is not HistoryBuffer or name.startswith('_') or not callable(
            getattr(HistoryBuffer, name, None)):
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only public methods of '
            'mmengine.logging.HistoryBuffer are allowed')
    return getattr(HistoryBuffer, name)


def mmengine_checkpoint_globals() -> List[Any]:
    """The non-tensor globals of a checkpoint saved by mmengine's ``Runner.save_checkpoint``.

    ``message_hub`` holds mmengine's ``HistoryBuffer`` (numpy arrays inside, and its statistics
    methods), and ``meta`` numpy scalars (e.g. the best score). Found by saving a real checkpoint
    and reading ``torch.serialization.get_unsafe_globals_in_checkpoint``. numpy 2 renamed
    ``numpy.core`` to ``numpy._core``; both names are listed, so checkpoints saved under
    either version load.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    numpy_functions = [(getattr(multiarray, name), f'numpy.{core}.multiarray.{name}')
                       for name in ('_reconstruct', 'scalar') for core in ('core', '_core')]
    numeric_dtypes = {type(np.dtype(code)) for code in '?bhilqBHILQefdgFDG'}
    return [HistoryBuffer, (history_buffer_method, 'builtins.getattr'), np.ndarray, np.dtype,
            *numeric_dtypes, *numpy_functions]


def allow_mmengine_checkpoints() -> None:
    """Let ``weights_only`` loading (torch>=2.6) read mmengine checkpoints, and nothing more.

    ``mmengine.runner.checkpoint.load_from_local`` calls ``torch.load`` without
    ``weights_only``, so resuming (``Runner.resume``) and testing a checkpoint fail on
    torch>=2.6. Rather than turning the check off, allow exactly the types they contain.
    """
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


# mmengine.runner.checkpoint.save_checkpoint, kept by use_atomic_checkpoint_writes for the
# backends that are not local files.
_ORIGINAL_SAVE_CHECKPOINT: Optional[Callable[..., None]] = None


def save_checkpoint_atomic(checkpoint: dict, filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """``mmengine.runner.checkpoint.save_checkpoint`` that never leaves a truncated local file.

    A local checkpoint goes through :func:`se_plugins.io.write_atomic` (a temporary file in the
    same folder, flushed to disk, then ``os.replace``d over ``filename``): a kill leaves either
    the previous file or the new one, never half of one. Other backends
    (``s3://``, ``pavi://``, ...) go through mmengine unchanged.
    """
    from mmengine.fileio import LocalBackend, get_file_backend

    filename = os.fspath(filename)
    if file_client_args is not None or '://' in filename or not isinstance(
            get_file_backend(filename, backend_args=backend_args), LocalBackend):
        _ORIGINAL_SAVE_CHECKPOINT(checkpoint, filename, file_client_args, backend_args)
        return
    write_atomic(filename, lambda f: torch.save(checkpoint, f))


def use_atomic_checkpoint_writes() -> None:
    """Route mmengine's checkpoint saving through :func:`save_checkpoint_atomic`.

    mmengine's ``save_checkpoint`` ends in ``LocalBackend.put``, which opens the target with
    ``'wb'`` and writes into it: a kill mid-write leaves a truncated ``epoch_N.pth`` that
    ``--resume`` then fails on. ``Runner.save_checkpoint`` and ``CheckpointHook`` call the
    function by the name they imported, so the name is rebound in each module that holds it.
    """
    global _ORIGINAL_SAVE_CHECKPOINT
    import mmengine.runner
    import mmengine.runner.checkpoint
    import mmengine.runner.runner

    if _ORIGINAL_SAVE_CHECKPOINT is None:
        _ORIGINAL_SAVE_CHECKPOINT = mmengine.runner.checkpoint.save_checkpoint
    for module in (mmengine.runner, mmengine.runner.checkpoint, mmengine.runner.runner):
        module.save_checkpoint = save_checkpoint_atomic


def init_cpu_distributed(cfg: Config) -> None:
    """Start a gloo process group for ``cfg.launcher`` when there is no GPU.

    ``mmengine.dist.init_dist`` (``_init_dist_pytorch``/``_slurm``/``_mpi``) calls
    ``torch.cuda.set_device(local_rank)`` whenever no NPU/MLU/MUSA is found, which raises
    without CUDA, and ``Runner.wrap_model`` gives ``MMDistributedDataParallel``
    ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. So, where mmengine's
    ``get_device()`` is the CPU: use gloo where the config asks for nccl, run mmengine's own
    ``init_dist`` with ``set_device`` stubbed out (``Runner.setup_env`` then sees an
    initialised group and skips it), and set ``device_ids=None`` in ``model_wrapper_cfg``
    (an explicit key wins over the default the Runner passes).
    """
    from mmengine.device import get_device
    from mmengine.dist import init_dist, is_distributed
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or get_device() != 'cpu':
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    if not is_distributed():
        with mock.patch.object(torch.cuda, 'set_device', lambda device: None):
            init_dist(launcher, **dist_cfg)

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:  # the wrapper Runner.wrap_model builds by default
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False), device_ids=None)
    elif issubclass(MODEL_WRAPPERS.get(wrapper_cfg.get('type', 'MMDistributedDataParallel')),
                    DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)


def setup(cfg: Config) -> None:
    """Apply every fix above; call once before ``Runner.from_cfg(cfg)``.

    Args:
        cfg: The merged config; ``cfg.launcher`` and ``cfg.env_cfg.dist_cfg`` decide the
            distributed setup, which may be completed in place for CPU machines.
    """
    allow_mmengine_checkpoints()
    use_atomic_checkpoint_writes()
    init_cpu_distributed(cfg)
