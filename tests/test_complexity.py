"""tools/analysis/complexity.py: fvcore's counts, SE included, for timm and MMPretrain models."""
import torch
from torch import nn

from scripts import load_script
from se_plugins import SELayer

torch.set_num_threads(1)
complexity = load_script('tools/analysis/complexity.py')


def test_counts_every_part_of_se():
    model = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False), SELayer(16))  # squeeze width 8
    params, total, in_se = complexity.count(model, input_size=8)
    conv, squeeze, rescale, excite = 3 * 16 * 64, 16 * 64, 16 * 64, 16 * 8 + 8 * 16
    assert (params, total, in_se) == (3 * 16 + excite + 8 + 16, conv + squeeze + rescale + excite,
                                      squeeze + rescale + excite)


def test_prints_a_row_per_model():
    out = complexity.main(['resnet18', 'se_resnet18_plugin', '--input-size', '32', '--num-classes', '10'])
    rows = [line.split('|')[1:-1] for line in out.splitlines()[2:]]
    assert [(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows] == [
        ('resnet18', 'timm', 'no'), ('se_resnet18_plugin', 'timm', 'default')]
    plain, se = (float(r[4]) for r in rows)
    assert se > plain and float(rows[0][5]) == 0 and float(rows[1][5]) > 0


def test_mmpretrain_rows_with_and_without_se_cfg():
    out = complexity.main(['resnet18_8xb16_cifar10', '--input-size', '32', '--baseline',
                           '--se-cfg', "{'position': 'post'}"])
    rows = [line.split('|')[1:-1] for line in out.splitlines()[2:]]
    assert [r[2].strip() for r in rows] == ['no', "{'position': 'post'}"]
    assert float(rows[1][3]) > float(rows[0][3]) and float(rows[1][5]) > 0
