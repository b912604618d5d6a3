"""timm adapter: SE models in timm's model registry.

``import se_plugins`` imports this package, and that registers the ``se_*_plugin`` models:
``timm.create_model('se_resnet50_plugin', se_cfg=dict(ratio=8))``. timm's scripts that
cannot import a plugin themselves run through :mod:`se_plugins.timm.run`.
"""
from . import se_inception, se_resnet  # noqa: F401  (se_inception: registers its models)
from .se_resnet import *  # noqa: F401,F403  (the SE blocks and the registered entrypoints)

__all__ = list(se_resnet.__all__)
MODEL_NAMES = tuple(name for name in se_resnet.__all__ if name.endswith('_plugin'))
