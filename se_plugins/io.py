"""Checkpoint files: read safely with errors that name the file, written atomically (never half a file)."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, List, Mapping, Optional, Set, Union

import torch

from .cli import USER_ERRORS, InputError
from .convert import CheckpointError, StateDict, unwrap

PathLike = Union[str, Path]
_SAVED_BY = 'expected a file written by torch.save or safetensors'


def _missing_parents(path: Path) -> Optional[Path]:
    """The highest missing folder above ``path``, or None where its parent exists."""
    top = None
    while not path.parent.exists() and path.parent != path:
        path = top = path.parent
    return top


def write_atomic(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """``write(file)`` to a temporary file beside ``path``, then ``os.replace`` it into place.

    A reader sees the old file or the new one, never half of one; on failure nothing is
    left, not even the folders made for it. The file gets the permissions an ordinary ``open``
    would give it (``mkstemp`` makes it owner-only).
    """
    path = Path(path)
    made = _missing_parents(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
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
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    return path


def save_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; a ``.safetensors`` path takes a flat dict of tensors."""
    if Path(path).suffix == '.safetensors':
        from safetensors.torch import save
        return write_atomic(path, lambda f: f.write(save(_unshared(obj))))
    return write_atomic(path, lambda f: torch.save(obj, f))


def _unshared(tensors: Mapping[str, torch.Tensor]) -> StateDict:
    """Contiguous copies where tensors share memory (tied weights), which safetensors cannot store."""
    seen: Set[int] = set()
    out = {}
    for key, value in tensors.items():
        pointer = value.untyped_storage().data_ptr()
        out[key] = value.clone().contiguous() if pointer in seen else value.contiguous()
        seen.add(pointer)
    return out


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does: an 8-byte header length, then a JSON object."""
    with open(path, 'rb') as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b'{' and int.from_bytes(head[:8], 'little') < path.stat().st_size


def check_output(path: PathLike, flag: str, folder: bool = False) -> None:
    """Raise :class:`~se_plugins.cli.InputError` unless ``path`` can be written (as a folder if ``folder``).

    Runs before any work, and creates nothing: a parent that is a regular file, a file where a
    folder is wanted (or the reverse) and a folder the user may not write are named.

    Args:
        path: The output the tool will write.
        flag: How the user gave it, e.g. ``'--out-dir'`` (named in the message).
        folder: Whether ``path`` is a folder to write into.
    """
    where = f'{flag} {str(path)!r}'
    if not folder and str(path).endswith(('/', os.sep)):
        raise InputError(f'{where}: ends with a slash, as a folder does; give the path of a file to write')
    path = Path(path)
    link = next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)
    if link is not None:
        raise InputError(f'{where}: {str(link)!r} is a symbolic link to nothing (dangling, or a loop); '
                         'remove it or choose another path')
    if folder and path.exists() and not path.is_dir():
        raise InputError(f'{where}: is a file, not a folder; give a folder to write into')
    if not folder and path.is_dir():
        raise InputError(f'{where}: is a folder; give the path of a file to write')
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f'{where}: cannot be written, {str(parent)!r} is a file, not a folder; '
                         'choose a path inside a folder')
    try:  # a file made and removed: os.access trusts permission bits, not read-only mounts or /proc
        fd, probe = tempfile.mkstemp(dir=parent, prefix='.se_plugins_probe.')
    except OSError:
        raise InputError(f'{where}: cannot be written, the folder {str(parent)!r} takes no new files '
                         '(read-only?); choose a folder you may write to') from None
    os.close(fd)
    os.unlink(probe)


def read_checkpoint(path: PathLike) -> Any:
    """The object in a ``torch.save`` file, loaded with ``weights_only``.

    Allowed beyond tensors: timm's saved training ``args`` (``argparse.Namespace``) and, where mmengine is
    installed, what the checkpoints of its Runner hold (:func:`se_plugins.engine.mmengine_checkpoint_globals`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
        CheckpointError: The file is empty, truncated, corrupted, not a PyTorch file, or holds Python
            objects a ``weights_only`` load refuses (they are named, not torch's advice to load unsafely).
    """
    path = Path(path)
    _check_file(path)
    try:
        return _load(path, [argparse.Namespace])
    except OSError:
        raise
    except Exception as err:  # the unpickler fails on bad bytes with any type: EOFError, KeyError ...
        failure = err
    unsafe = _unsafe_globals(path)
    if any(name.startswith('mmengine.') for name in unsafe):  # a checkpoint of mmengine's Runner
        try:
            from .engine.compat import mmengine_checkpoint_globals
        except ImportError:  # no mmengine: the names are reported
            pass
        else:
            try:
                return _load(path, [argparse.Namespace, *mmengine_checkpoint_globals()])
            except OSError:
                raise
            except Exception as err:
                failure, unsafe = err, []
    if unsafe:
        raise CheckpointError(
            f'{path}: holds pickled Python objects that a safe (weights_only) load refuses: '
            f'{", ".join(unsafe[:5])}; save the weights alone: torch.save(model.state_dict(), PATH)') from failure
    raise CheckpointError(f'{path}: not a readable PyTorch checkpoint (empty, truncated or corrupted?); '
                          f'{_SAVED_BY}') from failure


def _load(path: Path, allowed: List[Any]) -> Any:
    """``torch.load(path, weights_only=True)`` with the globals ``allowed``."""
    with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
        # A pickle not written by torch.save: the unpickler's protocol warning is not for our user.
        warnings.filterwarnings('ignore', message='Detected pickle protocol', category=UserWarning)
        # A sparse tensor's check on load: the fit to the model names such a tensor, in one line.
        warnings.filterwarnings('ignore', message='.*sparse tensor invariants', category=UserWarning)
        return torch.load(path, map_location='cpu', weights_only=True)


def _unsafe_globals(path: Path) -> List[str]:
    """The globals a ``torch.save`` zip file asks for that are not allowed; [] for any other file."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a damaged archive: unreadable
        return []


def load_state_dict(path: PathLike) -> StateDict:
    """The state dict in a ``.pth``/``.pt``/``.safetensors`` file of timm, torchvision or MMPretrain.

    Raises:
        FileNotFoundError, IsADirectoryError, CheckpointError: As :func:`read_checkpoint`; also for a
            file that holds no mapping of names to tensors.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix != '.safetensors' and not _is_safetensors(path):  # by content: names lie
        return state_dict_of(read_checkpoint(path), path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return state_dict_of(load_file(path), path)
    except SafetensorError as err:
        raise CheckpointError(f'{path}: not a readable safetensors file (empty, truncated or corrupted? {err}); '
                              f'{_SAVED_BY}') from err


def state_dict_of(checkpoint: Any, path: PathLike) -> StateDict:
    """The tensors of ``checkpoint`` read from ``path`` (see :func:`~se_plugins.convert.unwrap`).

    Raises:
        CheckpointError: ``checkpoint`` is no mapping or holds no tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{path}: holds a {type(checkpoint).__name__}, not a state dict; '
                              'expected a mapping of parameter names to tensors (model.state_dict())')
    state_dict = unwrap(checkpoint)
    if not state_dict:
        raise CheckpointError(f'{path}: holds no tensors (keys: {list(checkpoint)[:5]}); '
                              'expected a mapping of parameter names to tensors (model.state_dict())')
    return state_dict


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f'{path}: is a folder; give a checkpoint file (.pth, .pt, .safetensors)')
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f'{path}: a symbolic link to nothing (dangling, or a loop); give a checkpoint file')
    if path.exists() and not path.is_file():
        raise CheckpointError(f'{path}: not a regular file (a pipe, socket or device); give a checkpoint file')
    if not path.is_file():
        raise FileNotFoundError(f'{path}: checkpoint not found (no such file)')


class Undo:
    """Remove what a run wrote under ``folder`` if bad input ends it before :meth:`keep` is called.

    A context manager. On entry it notes the entries of ``folder`` (where the folder does not exist
    yet, the highest of its missing folders); if an error of :data:`~se_plugins.cli.USER_ERRORS`
    leaves the block before :meth:`keep`, the new entries that ``ours`` claims (or that new folder)
    are removed. What existed stays, changed or not, and so does what another process wrote there
    meanwhile, when ``ours`` tells the run's names from others.

    Args:
        folder: The folder the run writes into.
        ours: Whether a new entry of ``folder``, by name, is one the run writes (default: every one).
    """

    def __init__(self, folder: PathLike, ours: Callable[[str], bool] = lambda name: True) -> None:
        self.folder = Path(folder).absolute()
        self.ours = ours
        self.kept = False
        self._made: Optional[Path] = None
        self._before: Optional[Set[str]] = None

    def keep(self) -> None:
        """From now on, leave what the run writes."""
        self.kept = True

    def __enter__(self) -> 'Undo':
        if self.folder.is_dir():
            self._before = set(os.listdir(self.folder))
        elif not self.folder.exists():
            self._made = _missing_parents(self.folder / 'entry')
        return self

    def __exit__(self, kind: Optional[type], err: Optional[BaseException], tb: Any) -> None:
        if self.kept or not isinstance(err, USER_ERRORS):
            return
        if self._made is not None:
            new = [self._made]
        elif self._before is not None and self.folder.is_dir():
            new = [self.folder / name for name in os.listdir(self.folder)
                   if name not in self._before and self.ours(name)]
        else:
            new = []
        for path in new:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
