"""The SE core: widths, MMPretrain compatibility, conv == linear, ranks, dtypes, errors."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from se_plugins import HSigmoid, SELayer, build_activation, make_divisible


@pytest.mark.parametrize('channels, ratio, divisor, width', [
    (64, 16, 8, 8), (128, 16, 8, 8), (256, 16, 8, 16), (512, 16, 8, 32), (1024, 16, 8, 64), (2048, 16, 8, 128),
    (40, 4, 8, 16), (96, 4, 8, 24), (256, 2, 8, 128), (2048, 32, 8, 64), (24, 4, 8, 8), (16, 16, 1, 1),
    (120, 4, 8, 32), (72, 4, 8, 24), (960, 4, 8, 240),
])
def test_squeeze_width_table(channels, ratio, divisor, width):
    assert SELayer(channels, ratio=ratio, divisor=divisor).squeeze_channels == width
    assert make_divisible(channels // ratio, divisor) == width


def test_squeeze_width_matches_mmpretrain():
    mm_divisible = pytest.importorskip('mmpretrain.models.utils').make_divisible
    for value in range(1, 600):
        for divisor in (1, 4, 8, 16):
            assert make_divisible(value, divisor) == mm_divisible(value, divisor), (value, divisor)


MM_VARIANTS = [dict(), dict(ratio=4), dict(squeeze_channels=12), dict(bias=False), dict(divisor=4, ratio=8),
               dict(act_cfg=dict(type='HSigmoid')), dict(act_cfg=(dict(type='ReLU'), dict(type='HSigmoid'))),
               dict(return_weight=True)]


@pytest.mark.parametrize('kwargs', MM_VARIANTS, ids=str)
def test_loads_mmpretrain_state_dict_strictly_with_the_same_outputs(kwargs):
    MMSELayer = pytest.importorskip('mmpretrain.models.utils').SELayer
    torch.manual_seed(0)
    theirs, ours = MMSELayer(64, **kwargs), SELayer(64, **kwargs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 64, 5, 7)
    assert (ours(x) - theirs(x)).abs().max().item() < 1e-6  # a matrix product for their 1x1 conv
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def copy_conv_to_linear(conv_se: SELayer, linear_se: SELayer) -> None:
    linear_se.load_state_dict({
        'fc1.weight': conv_se.conv1.conv.weight.flatten(1), 'fc1.bias': conv_se.conv1.conv.bias,
        'fc2.weight': conv_se.conv2.conv.weight.flatten(1), 'fc2.bias': conv_se.conv2.conv.bias})


def test_conv_and_linear_excitation_are_the_same_function():
    conv_se, linear_se = SELayer(48, ratio=4), SELayer(48, ratio=4, excitation='linear')
    assert sorted(linear_se.state_dict()) == ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']
    assert sum(p.numel() for p in conv_se.parameters()) == sum(p.numel() for p in linear_se.parameters()) == 2 * 48 * 16 + 16 + 48 == 1600  # 48 // 4 = 12 rounds to 16
    copy_conv_to_linear(conv_se, linear_se)
    x = torch.randn(3, 48, 6, 6)
    assert (conv_se(x) - linear_se(x)).abs().max() < 1e-6


def reference_se(x: torch.Tensor, se: SELayer) -> torch.Tensor:
    """The paper's formula written out for 2D input: x * sigmoid(W2 relu(W1 mean(x) + b1) + b2)."""
    s = x.mean((2, 3))
    hidden = F.relu(s @ se.conv1.conv.weight.flatten(1).T + se.conv1.conv.bias)
    gate = torch.sigmoid(hidden @ se.conv2.conv.weight.flatten(1).T + se.conv2.conv.bias)
    return x * gate[:, :, None, None]


def test_matches_the_formula_of_the_paper():
    se = SELayer(32, ratio=4)
    x = torch.randn(2, 32, 4, 4)
    assert (se(x) - reference_se(x, se)).abs().max() < 1e-6


@pytest.mark.parametrize('squeeze', ['avg', 'max', 'avgmax'])
def test_squeeze_operators(squeeze):
    se = SELayer(8, squeeze_channels=4, squeeze=squeeze, return_weight=True)
    x = torch.randn(2, 8, 3, 5)
    pooled = {'avg': x.mean((2, 3)), 'max': x.amax((2, 3)), 'avgmax': (x.mean((2, 3)) + x.amax((2, 3))) / 2}
    assert torch.allclose(se(x).flatten(1), se.excite(pooled[squeeze]))


@pytest.mark.parametrize('shape', [(2, 16, 9), (2, 16, 5, 7), (2, 16, 3, 4, 5)], ids=['1d', '2d', '3d'])
def test_any_spatial_rank_is_the_same_function(shape):
    se = SELayer(16, ratio=4)
    x = torch.randn(shape)
    y = se(x)
    assert y.shape == x.shape
    as_2d = x.reshape(2, 16, -1, 1)
    assert torch.allclose(y.reshape(as_2d.shape), se(as_2d), atol=1e-6)
    assert se.__class__(16, ratio=4, return_weight=True)(x).shape == (2, 16) + (1,) * (len(shape) - 2)


def test_channels_last_gives_the_same_result():
    se = SELayer(32, ratio=4)
    x = torch.randn(2, 32, 6, 6)
    y = se(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert (y - se(x)).abs().max() < 1e-6
    x3 = torch.randn(2, 32, 3, 4, 4)
    assert (se(x3.contiguous(memory_format=torch.channels_last_3d)) - se(x3)).abs().max() < 1e-6


@pytest.mark.parametrize('dtype, tol', [(torch.float32, 0), (torch.bfloat16, 2e-2), (torch.float16, 5e-3)])
def test_dtypes_and_factory_kwargs(dtype, tol):
    se32 = SELayer(32, ratio=4)
    se = SELayer(32, ratio=4, dtype=dtype, device='cpu')
    assert all(p.dtype == dtype for p in se.parameters())
    se.load_state_dict(se32.state_dict())
    x = torch.randn(2, 32, 4, 4)
    y = se(x.to(dtype))
    assert y.dtype == dtype
    assert (y.float() - se32(x)).abs().max() <= tol


def test_gradients_flow_to_input_and_every_parameter():
    se = SELayer(16, ratio=4)
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    se(x).square().sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in se.parameters())


@pytest.mark.parametrize('act_cfg, expected', [
    (dict(type='ReLU'), (nn.ReLU, nn.ReLU)),
    ('hsigmoid', (HSigmoid, HSigmoid)),
    (nn.SiLU, (nn.SiLU, nn.SiLU)),
    ((dict(type='Swish'), dict(type='HardSigmoid')), (nn.SiLU, HSigmoid)),
    ((dict(type='LeakyReLU', negative_slope=0.2), 'Tanh'), (nn.LeakyReLU, nn.Tanh)),
    ((dict(type='HSwish'), dict(type='Identity')), (nn.Hardswish, nn.Identity)),
    ((dict(type='GELU'), dict(type='ReLU6')), (nn.GELU, nn.ReLU6)),
])
def test_act_cfg_forms(act_cfg, expected):
    se = SELayer(16, ratio=4, act_cfg=act_cfg)
    assert (type(se.conv1.activate), type(se.conv2.activate)) == expected


def test_hsigmoid_matches_hardsigmoid_and_mmcv_arguments():
    x = torch.linspace(-8, 8, 101)
    assert torch.equal(HSigmoid()(x), F.hardsigmoid(x))
    assert torch.allclose(HSigmoid(bias=1.0, divisor=2.0)(x), ((x + 1) / 2).clamp(0, 1))


def test_unknown_activation_falls_back_to_mmengine_registry():
    pytest.importorskip('mmengine')
    act = build_activation(dict(type='Clamp', min=-0.5, max=0.5))
    assert torch.equal(act(torch.tensor([-2.0, 0.1, 3.0])), torch.tensor([-0.5, 0.1, 0.5]))


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(channels=0), ValueError, ["'channels'", 'positive int', '0']),
    (dict(channels=64, ratio=0), ValueError, ["'ratio'", 'positive', '0']),
    (dict(channels=64, ratio=-2), ValueError, ["'ratio'", '-2']),
    (dict(channels=64, squeeze_channels=0), ValueError, ["'squeeze_channels'", 'positive']),
    (dict(channels=64, excitation='mlp'), ValueError, ["'excitation'", "'conv', 'linear'", "'mlp'"]),
    (dict(channels=64, squeeze='mean'), ValueError, ["'squeeze'", "'avg', 'max', 'avgmax'", "'mean'"]),
    (dict(channels=64, act_cfg=dict(type='Sigmoidd')), ValueError, ['act_cfg[0]', "'Sigmoidd'", 'HSigmoid']),
    (dict(channels=64, act_cfg=(dict(type='ReLU'),)), ValueError, ["'act_cfg'", 'pair']),
    (dict(channels=64, act_cfg=dict(kind='ReLU')), TypeError, ['act_cfg[0]', "'type'"]),
    (dict(channels=64, act_cfg=dict(type='ReLU', slope=1)), TypeError, ['act_cfg[0]', 'slope']),
    (dict(channels=64, bias='yes'), ValueError, ["'bias'", "'auto', True or False"]),
])
def test_bad_arguments_name_the_field(kwargs, error, words):
    with pytest.raises(error) as info:
        SELayer(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_wrong_input_channels_is_a_clear_error():
    with pytest.raises(ValueError, match=r'\(N, 64, \*spatial\).*got shape \[2, 32, 4, 4\]'):
        SELayer(64)(torch.randn(2, 32, 4, 4))


BLOCKED = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'timm', 'mmengine', 'mmcv', 'mmpretrain'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import torch, se_plugins
se = se_plugins.SELayer(64)
print(tuple(se(torch.randn(1, 64, 3, 3)).shape), se.squeeze_channels,
      sorted(m for m in sys.modules if m.split('.')[0] in {'timm', 'mmengine', 'mmcv', 'mmpretrain'}))
"""


def test_import_works_with_frameworks_blocked():
    out = subprocess.run([sys.executable, '-c', BLOCKED], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '(1, 64, 3, 3) 8 []'
