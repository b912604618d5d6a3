"""Squeeze-and-Excitation for timm and MMPretrain.

``import se_plugins`` registers the SE models in timm's model registry and SE
support in MMPretrain's MODELS registry, for whichever of the two is installed.
The core (:class:`SELayer`) is plain PyTorch and needs neither.
"""
from importlib import import_module

from .config import SEConfig
from .layers import HSigmoid, SELayer, build_activation, make_divisible

__version__ = '0.1.0'
__all__ = ['HSigmoid', 'SEConfig', 'SELayer', 'build_activation', 'make_divisible']


def _register(framework: str, adapter: str) -> None:
    """Import ``adapter`` (which registers into ``framework``) if ``framework`` imports."""
    try:
        import_module(framework)
    except ImportError:
        return
    import_module(adapter, __name__)


_register('timm', '.timm')
_register('mmpretrain', '.mmpretrain')
