"""timm adapter: SE models in timm's model registry.

``import se_plugins`` imports this package, and that registers the ``se_*_plugin`` models:
``timm.create_model('se_resnet50_plugin', se_cfg=dict(ratio=8))``. timm's scripts that
cannot import a plugin themselves run through :mod:`se_plugins.timm.run`.
"""
from . import se_byobnet, se_inception, se_regnet, se_resnet  # noqa: F401  (each registers its models)
from .se_resnet import *  # noqa: F401,F403  (the SE blocks and the registered entrypoints)

__all__ = list(se_resnet.__all__)
MODEL_NAMES = tuple(name for module in (se_resnet, se_byobnet, se_regnet)
                    for name in module.__all__ if name.endswith('_plugin'))
