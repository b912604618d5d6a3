"""The digits demo data: layouts, split, idempotence, and the CIFAR-10 batches' reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from se_plugins.data import prepare_digits
from se_plugins.data.digits import LayoutError


@pytest.fixture(scope='module')
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both layouts, prepared once for this module."""
    root = tmp_path_factory.mktemp('data') / 'digits'
    prepare_digits(root)
    return root


def test_image_folder_holds_a_stratified_80_20_split(digits: Path) -> None:
    """1,437 train and 360 val PNGs, 32x32 RGB, every digit in both splits at ~20%."""
    folder = digits / 'imagefolder'
    counts = {split: {d.name: len(list(d.glob('*.png'))) for d in (folder / split).iterdir()}
              for split in ('train', 'val')}
    assert sorted(counts['train']) == sorted(counts['val']) == [str(d) for d in range(10)]
    assert sum(counts['train'].values()) == 1437 and sum(counts['val'].values()) == 360
    assert all(35 <= n <= 37 for n in counts['val'].values())
    image = Image.open(next((folder / 'val' / '3').glob('*.png')))
    assert image.size == (32, 32) and image.mode == 'RGB'


def test_preparing_twice_rewrites_nothing(digits: Path) -> None:
    """A second run returns the same paths and leaves the files (and no temp folder) alone."""
    png = next((digits / 'imagefolder' / 'train' / '0').glob('*.png'))
    before = png.stat().st_mtime_ns
    assert prepare_digits(digits)['imagefolder'] == digits / 'imagefolder'
    assert png.stat().st_mtime_ns == before
    assert sorted(p.name for p in digits.iterdir()) == ['cifar-10-batches-py', 'imagefolder']


def test_another_split_over_a_layout_is_refused(digits: Path) -> None:
    """Each layout records its split; asking for another one over it names the layout, not a silent no-op."""
    assert (digits / 'imagefolder' / '.split.json').read_text() == '{"val_fraction": 0.2, "seed": 0}'
    with pytest.raises(LayoutError, match=r"imagefolder: was split with \{'val_fraction': 0.2, 'seed': 0\}"):
        prepare_digits(digits, val_fraction=0.3)
    with pytest.raises(LayoutError, match='seed'):
        prepare_digits(digits, seed=1)


def test_cifar10_batches_hold_the_same_images(digits: Path) -> None:
    """MMPretrain reads the batches (via CIFAR10Layout) as the same images and labels."""
    pytest.importorskip('mmpretrain')
    from mmpretrain.datasets import CIFAR10

    from se_plugins.data.cifar10_layout import CIFAR10Layout

    val = CIFAR10Layout(data_root=str(digits), split='test', download=False, pipeline=[])
    assert len(val) == 360 and val.metainfo['classes'] == [str(d) for d in range(10)]
    first = val.get_data_info(0)
    png = sorted((digits / 'imagefolder' / 'val').glob(f"{first['gt_label']}/*.png"))[0]
    assert np.array_equal(first['img'], np.asarray(Image.open(png)))
    assert len(CIFAR10Layout(data_root=str(digits), split='train', download=False)) == 1437
    # The stock class pins the official archive's md5s, so it cannot read these files.
    with pytest.raises(RuntimeError, match='Cannot find CIFAR10'):
        CIFAR10(data_root=str(digits), split='test', download=False)
