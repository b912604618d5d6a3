"""Importing the repository's scripts (``tools/``: files, not a package) in tests."""
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str) -> ModuleType:
    """Import the script at ``path`` (relative to the repository root), e.g. ``'tools/train.py'``."""
    name = 'script_' + path[:-len('.py')].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A tiny SE-ResNet-18 (CIFAR stem, 8 base channels, 2 classes) config; {pipeline} is its test pipeline.
TINY_MM_CONFIG = """
_base_ = ['mmpretrain::_base_/models/resnet18_cifar.py']
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(stem_channels=8, base_channels=8, se_cfg=dict()),
             head=dict(num_classes=2, in_channels=64))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True)
test_dataloader = dict(dataset=dict(pipeline={pipeline}))
"""
PACK = "[dict(type='LoadImageFromFile'), dict(type='PackInputs')]"
