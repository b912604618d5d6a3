"""MMPretrain adapter: ``se_cfg`` on MMPretrain backbones, SE modules in MODELS.

Importing it (``custom_imports = dict(imports=['se_plugins'])`` in a config does, see
:mod:`se_plugins`) registers, in MMPretrain's ``MODELS``, SE-capable subclasses of
``ResNet``, ``ResNetV1c``, ``ResNetV1d``, ``ResNeXt``, ``ResNet_CIFAR``, ``SEResNet``,
``SEResNeXt``, ``InceptionV3`` and ``MobileNetV2`` under their stock names (they take
``se_cfg``), and ``SELayer``, ``SEResNetV1c``, ``SEResNetV1d`` and ``SEResNet_CIFAR``.
"""
from ..layers import SELayer
from . import other_backbones  # noqa: F401  (se_cfg on InceptionV3 and MobileNetV2)
from .backbones import SUPPORTED_BACKBONES, SEResNet_CIFAR, SEResNetV1c, SEResNetV1d, register

register(SELayer)

__all__ = ['SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR', 'SUPPORTED_BACKBONES']
