"""MMPretrain's CIFAR10 reader for data written in the CIFAR-10 python layout.

Importing this module registers ``CIFAR10Layout`` in MMPretrain's DATASETS; a config selects
it with ``custom_imports = dict(imports=['se_plugins.data.cifar10_layout'])``.
"""
from mmpretrain.datasets import CIFAR10
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class CIFAR10Layout(CIFAR10):
    """:class:`mmpretrain.datasets.CIFAR10` without the md5 pins of the official archive.

    The stock class checks every batch file against the md5 of the official download, so it
    refuses any other data in the same layout (e.g. ``se_plugins.data.write_cifar10_layout``).
    Loading is unchanged; class names come from ``batches.meta`` instead of CIFAR-10's ten.
    Use with ``download=False``: there is nothing to download.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = dict(CIFAR10.meta, md5=None)
    METAINFO: dict = {}
