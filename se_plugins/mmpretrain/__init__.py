"""MMPretrain adapter: ``se_cfg`` on MMPretrain backbones, SE modules in MODELS.

Importing it (``custom_imports = dict(imports=['se_plugins'])`` in a config does, see
:mod:`se_plugins`) registers, in MMPretrain's ``MODELS``, SE-capable subclasses of
``ResNet``, ``ResNetV1c``, ``ResNetV1d``, ``ResNeXt``, ``ResNet_CIFAR``, ``SEResNet``,
``SEResNeXt``, ``RegNet``, ``InceptionV3`` and ``MobileNetV2`` under their stock names (they
take ``se_cfg``; ``RegNet`` also names RegNetY's widths, ``arch='regnety_4.0gf'``), and
``SELayer``, ``SEResNetV1c``, ``SEResNetV1d`` and ``SEResNet_CIFAR``.
"""
import warnings

from ..layers import SELayer

with warnings.catch_warnings():
    # Importing MMPretrain's backbones imports mmcv.cnn.bricks.transformer, which under mmcv-lite (no compiled
    # ops) warns that MultiScaleDeformableAttention is missing; SE never uses it, so its user cannot act on it.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``',
                            category=UserWarning, module='mmcv.cnn.bricks.transformer')
    from . import other_backbones  # noqa: F401  (se_cfg on InceptionV3 and MobileNetV2)
    from .backbones import SUPPORTED_BACKBONES, SEResNet_CIFAR, SEResNetV1c, SEResNetV1d, register

register(SELayer)

__all__ = ['SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR', 'SUPPORTED_BACKBONES']
