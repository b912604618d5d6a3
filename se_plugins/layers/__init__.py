"""The SE core: plain PyTorch, no framework imports."""
from .activation import HSigmoid, build_activation
from .make_divisible import make_divisible
from .se_layer import SELayer

__all__ = ['HSigmoid', 'SELayer', 'build_activation', 'make_divisible']
