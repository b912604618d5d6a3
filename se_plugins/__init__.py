"""Squeeze-and-Excitation for timm and MMPretrain.

The core (:class:`SELayer`) is plain PyTorch and needs neither framework. What
``import se_plugins`` registers:

- timm installed: the ``se_*_plugin`` models in timm's registry (:mod:`se_plugins.timm`).
- MMPretrain: SE support in MMPretrain's MODELS (:mod:`se_plugins.mmpretrain`), as soon as
  ``mmpretrain`` is imported: at once if it already is (a config's
  ``custom_imports=dict(imports=['se_plugins'])``, a script that imported it first), else
  right after the program imports it. A timm-only program never imports OpenMMLab.
"""
import importlib.abc
import importlib.util
import sys
from importlib import import_module
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

from .config import SEConfig
from .layers import HSigmoid, SELayer, build_activation, make_divisible

__version__ = '0.1.0'
__all__ = ['HSigmoid', 'SEConfig', 'SELayer', 'build_activation', 'make_divisible']


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs ``then()`` once, right after the program imports the top-level module ``name``."""

    def __init__(self, name: str, then: Callable[[], Any]) -> None:
        self.name, self.then, self.loader = name, then, None

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the real finders answer the lookup below
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.then()


def _when_imported(name: str, then: Callable[[], Any]) -> None:
    """Run ``then()`` now if ``name`` is imported, else right after it is, if it is installed."""
    if name in sys.modules:
        then()
        return
    try:
        installed = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. a finder that blocks it
        installed = False
    if installed:
        sys.meta_path.insert(0, _AfterImport(name, then))


_when_imported('timm', lambda: import_module('.timm', __name__))
_when_imported('mmpretrain', lambda: import_module('.mmpretrain', __name__))
