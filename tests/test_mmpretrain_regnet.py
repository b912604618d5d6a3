"""MMPretrain's RegNet with se_cfg: RegNetY by name, its configs equal timm's regnety_*, the design space."""
import functools
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmpretrain')
timm = pytest.importorskip('timm')
from mmengine.config import Config  # noqa: E402
from mmpretrain import models as stock  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from timm.models.regnet import model_cfgs  # noqa: E402

from se_plugins import SELayer  # noqa: E402
from se_plugins.config import POSITIONS  # noqa: E402
from se_plugins.convert import convert  # noqa: E402
from se_plugins.mmpretrain import backbones  # noqa: E402
from se_plugins.mmpretrain.backbones import REGNETY, RegNet  # noqa: E402

torch.set_num_threads(1)
CONFIGS = Path(__file__).parents[1] / 'configs' / 'se_plugins'
REGNETY_SE = dict(position='3x3_act', ratio_of='block_input', ratio=4, divisor=1)
RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
# Parameter counts pinned from timm 1.0.31 (the test also asks timm at run time).
PINNED = {'regnety_002': 3_162_996, 'regnety_008': 6_263_168, 'regnety_008_tv': 6_432_512,
          'regnety_040': 20_646_656, 'regnety_080_tv': 39_381_472, 'regnety_2560': 1_282_601_138}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.lru_cache(maxsize=None)
def load(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / name))


# Shipped config -> the timm model it equals (through its arch's REGNETY entry).
TWINS = {path.name: REGNETY[load(path.name).model.backbone.arch][0] for path in sorted(CONFIGS.glob('regnety-*.py'))}


@functools.lru_cache(maxsize=None)
def ours(name: str) -> torch.nn.Module:
    """The classifier of shipped config ``name``, on the meta device (no memory)."""
    with torch.device('meta'):
        return MODELS.build(load(name).model)


@functools.lru_cache(maxsize=None)
def theirs(timm_name: str) -> torch.nn.Module:
    return timm.create_model(timm_name, device='meta')


def test_the_regnety_table_is_timms_and_covers_every_regnety_with_weights():
    with_weights = {m.split('.')[0] for m in timm.list_models('regnety_*', pretrained=True)}
    assert sorted(timm_name for timm_name, *_ in REGNETY.values()) == sorted(with_weights)
    assert len(REGNETY) == 17 and sorted(TWINS.values()) == sorted(with_weights)  # one config each
    for name, (timm_name, w0, wa, wm, group_w, depth, group_min_ratio) in REGNETY.items():
        cfg = model_cfgs[timm_name]
        assert (w0, wa, wm, group_w, depth, group_min_ratio) == (
            cfg.w0, cfg.wa, cfg.wm, cfg.group_size, cfg.depth, cfg.group_min_ratio), name
        assert (cfg.se_ratio, cfg.bottle_ratio, cfg.stem_width, cfg.downsample, cfg.act_layer, cfg.norm_layer,
                cfg.linear_out, cfg.preact, cfg.num_features) == (0.25, 1.0, 32, 'conv1x1', 'relu', 'batchnorm',
                                                                   False, False, 0), name


@pytest.mark.parametrize('name', TWINS)
def test_configs_count_exactly_as_their_timm_model(name):
    timm_name = TWINS[name]
    expected = n_params(theirs(timm_name))
    assert n_params(ours(name)) == expected == PINNED.get(timm_name, expected)


@pytest.mark.parametrize('name', TWINS)
def test_configs_have_timms_widths_groups_and_squeeze_widths(name):
    model, reference = ours(name).backbone, theirs(TWINS[name])
    blocks = [[(b.conv2.out_channels, b.conv2.groups, b.conv3.out_channels, b.se_3x3_act.squeeze_channels)
               for b in getattr(model, layer)] for layer in model.res_layers]
    expected = [[(b.conv2.conv.out_channels, b.conv2.conv.groups, b.conv3.conv.out_channels, b.se.fc1.out_channels)
                 for b in getattr(reference, f's{i}').children()] for i in range(1, 5)]
    assert blocks == expected
    assert model.stage_widths == [stage[-1][2] for stage in expected]
    assert ours(name).head.fc.in_features == model.stage_widths[-1] == reference.num_features


@pytest.mark.parametrize('name', ['regnety-200mf_8xb128_in1k.py', 'regnety-800mf-tv_8xb128_in1k.py'])
def test_timm_weights_converted_give_timms_logits(name):
    torch.manual_seed(0)
    reference = timm.create_model(TWINS[name]).eval()
    with torch.no_grad():
        for m in reference.modules():  # random BN statistics and SE biases: every part counts
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.weight.uniform_(0.5, 1)
        for block in reference.modules():
            if hasattr(block, 'se') and hasattr(block.se, 'fc2'):
                block.se.fc2.bias.uniform_(-1, 1)
    model = MODELS.build(load(name).model)
    model.load_state_dict(convert(reference.state_dict(), to='mmpretrain'), strict=True)
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), reference(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', TWINS)
def test_configs_take_rgb_with_imagenet_statistics_and_regnety_se(name):
    cfg = load(name)
    assert cfg.custom_imports.imports == ['se_plugins']
    assert cfg.model.backbone.type == 'RegNet' and cfg.model.backbone.se_cfg == REGNETY_SE
    assert {k: cfg.data_preprocessor[k] for k in RGB} == RGB
    lighting = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Lighting']
    assert len(lighting) == 1 and lighting[0].to_rgb is False  # it jitters the BGR image, before the flip


def test_regnety_names_build_the_widths_without_se_unless_asked():
    with torch.device('meta'):
        plain = MODELS.build(dict(type='RegNet', arch='regnety_4.0gf'))
    assert (plain.stage_widths, plain.stage_blocks, plain.group_widths) == (
        [128, 192, 512, 1088], [2, 6, 12, 2], [64, 64, 64, 64])
    assert type(plain.layer1[0]) is stock.backbones.resnext.Bottleneck
    assert not any(isinstance(m, SELayer) for m in plain.modules())


@pytest.mark.parametrize('name, group_min_ratio, widths', [
    ('regnety_800mf', 0, [64, 128, 320, 768]), ('regnety_800mf', 0.9, [64, 144, 320, 784]),
    ('regnety_8.0gf', 0, [168, 448, 896, 2016]), ('regnety_8.0gf', 0.9, [224, 448, 896, 2016]),
])
def test_group_min_ratio_rounds_bottlenecks_as_torchvision(name, group_min_ratio, widths):
    arch = {k: v for k, v in RegNet.arch_settings[name].items() if k != 'group_min_ratio'}
    with torch.device('meta'):
        model = RegNet(dict(arch, group_min_ratio=group_min_ratio))
    assert model.stage_widths == widths
    assert RegNet.arch_settings[f'{name}_tv'] == dict(arch, group_min_ratio=0.9)


X400 = dict(w0=24, wa=24.48, wm=2.54, group_w=16, depth=22, bot_mul=1.0)


@pytest.mark.parametrize('arch, error, match', [
    ('regnety_4gf', ValueError, r"^RegNet: arch='regnety_4gf' is not a known name; known: \['regnetx_400mf', "),
    ({k: v for k, v in X400.items() if k != 'wm'}, ValueError,
     r"^RegNet: arch dict needs the keys \['w0', 'wa', 'wm', 'group_w', 'depth', 'bot_mul'\] .*; "
     r"missing \['wm'\], unknown \[\]"),
    (dict(X400, groups=3), ValueError, r"missing \[\], unknown \['groups'\]"),
    (dict(X400, group_min_ratio=1.5), ValueError, r"^RegNet: arch 'group_min_ratio' must be a number in \[0, 1\); "
                                                  r'got 1.5'),
    (50, TypeError, r"^RegNet: arch must be a name or a dict of \['w0', .*\]; got int"),
], ids=['unknown-name', 'missing-key', 'unknown-key', 'bad-ratio', 'not-a-dict'])
def test_bad_arch_fails_naming_the_field_and_what_is_allowed(arch, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type='RegNet', arch=arch))


def test_stock_regnet_is_unchanged_and_ours_builds_it_without_se_cfg():
    assert MODELS.get('RegNet') is RegNet and RegNet.__bases__ == (backbones.TakesSECfg, stock.RegNet)
    assert list(stock.RegNet.arch_settings) == ['regnetx_400mf', 'regnetx_800mf', 'regnetx_1.6gf', 'regnetx_3.2gf',
                                                'regnetx_4.0gf', 'regnetx_6.4gf', 'regnetx_8.0gf', 'regnetx_12gf']
    assert len(RegNet.arch_settings) == 8 + 17
    torch.manual_seed(0)
    reference = stock.RegNet('regnetx_400mf')
    torch.manual_seed(0)
    model = MODELS.build(dict(type='RegNet', arch='regnetx_400mf', se_cfg=None))
    model.eval(), reference.eval()  # (MMPretrain's ResNet.train returns None: no chaining)
    assert [(n, type(m)) for n, m in model.named_modules() if n] == [
        (n, type(m)) for n, m in reference.named_modules() if n]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x)[0], reference(x)[0])


def small(**se_cfg) -> RegNet:
    """RegNetY-200MF's widths (stages of 1, 1, 4, 7 blocks; 24, 56, 152, 368 channels) with ``se_cfg``."""
    torch.manual_seed(0)
    return MODELS.build(dict(type='RegNet', arch='regnety_200mf', se_cfg=se_cfg))


def se_layers(model: RegNet) -> list:
    """(block, SE channels, squeeze width) of every SE layer, in order."""
    return [('.'.join(n.split('.')[:2]), m.channels, m.squeeze_channels)
            for n, m in model.named_modules() if isinstance(m, SELayer)]


def train_step(model: RegNet) -> list:
    """One forward/backward in train mode; the gradients of each SE layer's parameters."""
    model.train()
    model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))[-1].square().mean().backward()
    return [[p.grad for p in m.parameters()] for m in model.modules() if isinstance(m, SELayer)]


def trains(grads: list) -> bool:
    """Every SE layer has finite gradients, not all zero (the gate's bias gets one where a ReLU is dead)."""
    return len(grads) > 0 and all(all(g is not None and torch.isfinite(g).all() for g in layer)
                                  and sum(g.abs().sum() for g in layer) > 0 for layer in grads)


BLOCKS = ['layer1.0', 'layer2.0'] + [f'layer3.{i}' for i in range(4)] + [f'layer4.{i}' for i in range(7)]
OUT = [24, 56] + [152] * 4 + [368] * 7  # block outputs = bottleneck widths (bot_mul=1)
IN = [32, 24, 56] + [152] * 4 + [368] * 6  # block inputs
SQUEEZE = {24: 8, 32: 8, 56: 16, 152: 40, 368: 96}  # make_divisible(C // 4, 8)


@pytest.mark.parametrize('position', POSITIONS)
def test_every_position_builds_runs_and_trains_its_se(position):
    model = small(position=position, ratio=4)
    channels = IN if position == 'pre' else OUT
    assert se_layers(model) == [(b, c, SQUEEZE[c]) for b, c in zip(BLOCKS, channels)]
    assert trains(train_step(model))


def test_regnety_se_squeezes_the_block_input():
    layers = se_layers(small(**REGNETY_SE))
    assert [c for _, c, _ in layers] == OUT
    assert [s for *_, s in layers] == [8, 6, 14] + [38] * 4 + [92] * 6  # round(IN / 4)


@pytest.mark.parametrize('se_cfg, squeeze_widths', [
    (dict(ratio=(4, 8, 16, 32), divisor=1), [6, 7, 9, 11]),  # 24 // 4, 56 // 8, 152 // 16, 368 // 32
    (dict(ratio=8, stages=(False, True, False, True)), [None, 8, None, 48]),
    (dict(squeeze_channels=16, squeeze='avgmax', excitation='linear', act_cfg=(dict(type='SiLU'), 'HSigmoid')),
     [16, 16, 16, 16]),
    (dict(REGNETY_SE, squeeze='max', act_cfg=dict(type='ReLU6'), bias=False, memory='plain'), [8, 6, 14, 38]),
], ids=['ratio-per-stage', 'stages', 'avgmax-linear-silu-hsigmoid', 'max-relu6-no-bias'])
def test_design_space_on_regnet(se_cfg, squeeze_widths):
    model = small(**{'position': '3x3_act', **se_cfg})
    firsts = [getattr(model, layer)[0].se_3x3_act for layer in model.res_layers]
    assert [None if se is None else se.squeeze_channels for se in firsts] == squeeze_widths
    assert sum(isinstance(m, SELayer) for m in model.modules()) == sum(
        len(getattr(model, layer)) for layer, se in zip(model.res_layers, firsts) if se is not None)
    assert trains(train_step(model))


def test_design_space_choices_reach_the_se_layers():
    linear = small(position='3x3_act', excitation='linear', squeeze='avgmax', act_cfg=(dict(type='SiLU'), 'HSigmoid'))
    se = linear.layer4[6].se_3x3_act
    assert (se.squeeze, type(se.fc1.activate).__name__, type(se.fc2.activate).__name__) == ('avgmax', 'SiLU',
                                                                                           'HSigmoid')
    plain = small(**REGNETY_SE, act_cfg=dict(type='ReLU6'), bias=False, memory='plain')
    se = plain.layer3[3].se_3x3_act
    assert (type(se.conv1.activate).__name__, type(se.conv2.activate).__name__) == ('ReLU6', 'ReLU6')
    assert (se.conv1.conv.bias, se.conv2.conv.bias, se.memory) == (None, None, 'plain')
