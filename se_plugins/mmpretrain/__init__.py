"""MMPretrain adapter: ``se_cfg`` on ResNet-family backbones, SE modules in MODELS.

``custom_imports = dict(imports=['se_plugins'])`` in a config (or ``import se_plugins``)
lets an MMPretrain ResNet-family backbone take ``se_cfg`` and registers ``SELayer``,
``SEResNetV1c``, ``SEResNetV1d`` and ``SEResNet_CIFAR`` in MMPretrain's ``MODELS``.
"""
from ..layers import SELayer
from . import other_backbones  # noqa: F401  (se_cfg on InceptionV3 and MobileNetV2)
from .backbones import SEResNet_CIFAR, SEResNetV1c, SEResNetV1d, SUPPORTED_BACKBONES, register

register(SELayer)

__all__ = ['SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR', 'SUPPORTED_BACKBONES']
