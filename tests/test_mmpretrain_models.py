"""MMPretrain adapter: se_cfg on stock configs, parameter counts, stock identity, checkpoints, errors."""
import contextlib
import copy
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import torch

pytest.importorskip('mmpretrain')
from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmpretrain import models as stock  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

from se_plugins import SELayer  # noqa: E402
from se_plugins.mmpretrain import backbones  # noqa: E402  (MODELS' ResNet family takes se_cfg)
from se_plugins.mmpretrain.backbones import ResNet, ResNeXt, SEResNet  # noqa: E402

CONFIGS = Path(__file__).parents[1] / 'configs' / 'se_plugins'
X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))

# Stock MMPretrain config -> (parameters without se_cfg, with se_cfg=dict(ratio=16)).
# SE adds 2*C*C' + C' + C per block (C' = make_divisible(C // 16, 8)).
STOCK = {
    'resnet/resnet18_8xb32_in1k.py': (11_689_512, 11_779_624),  # = timm seresnet18
    'resnet/resnet50_8xb32_in1k.py': (25_557_032, 28_088_024),  # = seresnet50_8xb32_in1k
    'resnext/resnext50-32x4d_8xb32_in1k.py': (25_028_904, 27_559_896),  # = seresnext50-32x4d_8xb32_in1k
    'resnet/resnetv1d50_8xb32_in1k.py': (25_576_264, 28_107_256),  # = SEResNet(deep_stem, avg_down)
    # ResNet_CIFAR-18, BasicBlocks (2, 2, 2, 2) of C = 64/128/256/512, C' = 8/8/16/32:
    # 2 * (1096 + 2184 + 8464 + 33312) = 90_112 SE parameters.
    'resnet/resnet18_8xb16_cifar10.py': (11_173_962, 11_173_962 + 90_112),
}
MM_SE = {'seresnet/seresnet50_8xb32_in1k.py': 28_088_024, 'seresnet/seresnext50-32x4d_8xb32_in1k.py': 27_559_896}
OURS = {'se-resnet50_8xb32_in1k.py': 28_088_024, 'se-resnext50-32x4d_8xb32_in1k.py': 27_559_896,
        'se-resnet18_8xb16_cifar10.py': 11_264_074}


@pytest.fixture(scope='module')
def load(tmp_path_factory):
    """Load ``mmpretrain::<base>`` through a one-line local config, as users do."""
    folder = tmp_path_factory.mktemp('configs')

    def load(base: str) -> Config:
        path = folder / base.replace('/', '__')
        path.write_text(f"_base_ = 'mmpretrain::{base}'\n")
        return Config.fromfile(str(path))
    return load


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def logits(model: torch.nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, mode='tensor')


def features(backbone: torch.nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    backbone.eval()  # (MMPretrain's ResNet.train returns None: no chaining)
    with torch.no_grad():
        return backbone(x)[-1]


def stock_build(cfg: dict) -> torch.nn.Module:
    """Build with MMPretrain's own backbone class (MODELS has the SE-capable subclass under its name)."""
    cfg = copy.deepcopy(cfg)
    cfg.backbone.type = getattr(stock, cfg.backbone.type)
    return MODELS.build(cfg)


@pytest.mark.parametrize('base', STOCK)
def test_stock_configs_with_se_cfg(base, load):
    cfg = load(base)
    cfg.model.backbone.se_cfg = dict(ratio=16)
    model = MODELS.build(cfg.model)
    assert n_params(model) == STOCK[base][1]
    assert logits(model).shape == (1, cfg.model.head.num_classes)
    assert len([k for k in model.state_dict() if '.se_layer.' in k]) == 4 * sum(model.backbone.stage_blocks)


@pytest.mark.parametrize('base', MM_SE)
def test_mmpretrain_se_configs_count_the_same(base, load):
    assert n_params(MODELS.build(load(base).model)) == MM_SE[base]


@pytest.mark.parametrize('name', OURS)
def test_shipped_configs_build_with_the_expected_counts(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.custom_imports.imports == ['se_plugins'] and cfg.model.backbone.se_cfg == dict(ratio=16)
    model = MODELS.build(cfg.model)
    assert n_params(model) == OURS[name]
    assert logits(model).shape == (1, cfg.model.head.num_classes)


@pytest.mark.parametrize('base', STOCK)
def test_without_se_cfg_the_model_is_the_stock_one(base, load):
    cfg = load(base).model
    torch.manual_seed(0)
    theirs = stock_build(cfg)
    assert n_params(theirs) == STOCK[base][0]
    stock_modules = [(n, type(m)) for n, m in theirs.named_modules() if n != 'backbone']
    stock_sd, stock_logits = theirs.state_dict(), logits(theirs)
    for se_cfg in ('absent', None):
        if se_cfg is None:
            cfg.backbone.se_cfg = None
        torch.manual_seed(0)
        ours = MODELS.build(cfg)
        assert type(ours.backbone).__bases__[1] is type(theirs.backbone)  # (TakesSECfg, the stock class)
        assert [(n, type(m)) for n, m in ours.named_modules() if n != 'backbone'] == stock_modules
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in ours.modules())
        ours_sd = ours.state_dict()
        assert list(ours_sd) == list(stock_sd)
        assert all(torch.equal(ours_sd[k], stock_sd[k]) for k in ours_sd)  # same init: same random draws
        assert torch.equal(logits(ours), stock_logits)


@pytest.fixture(scope='module')
def seresnet50_checkpoint(tmp_path_factory, load):
    """A stock seresnet50_8xb32_in1k classifier (random weights), its logits and its checkpoint file."""
    torch.manual_seed(1)
    model = MODELS.build(load('seresnet/seresnet50_8xb32_in1k.py').model)
    for m in model.modules():  # random BN statistics, so that eval mode is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.weight.data.uniform_(0.5, 1)
    path = tmp_path_factory.mktemp('ckpt') / 'seresnet50.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return model, logits(model), path


def test_stock_seresnet50_checkpoint_loads_strictly_with_identical_outputs(seresnet50_checkpoint):
    stock, stock_logits, path = seresnet50_checkpoint
    ours = MODELS.build(Config.fromfile(str(CONFIGS / 'se-resnet50_8xb32_in1k.py')).model)
    assert type(ours.backbone) is ResNet
    assert set(ours.state_dict()) == set(stock.state_dict())
    load_checkpoint(ours, str(path), strict=True)
    assert torch.equal(logits(ours), stock_logits)


@pytest.mark.parametrize('theirs, ours', [
    (lambda: stock.SEResNeXt(depth=50), lambda: ResNeXt(depth=50, se_cfg=dict())),
    (lambda: stock.SEResNet(depth=50, deep_stem=True, avg_down=True),
     lambda: MODELS.build(dict(type='SEResNetV1d', depth=50))),
], ids=['SEResNeXt-50', 'SEResNetV1d-50'])
def test_backbone_state_dicts_load_strictly_with_identical_outputs(theirs, ours, tmp_path):
    torch.manual_seed(0)
    theirs, ours = theirs(), ours()
    assert n_params(ours) == n_params(theirs)
    torch.save(theirs.state_dict(), tmp_path / 'backbone.pth')
    ours.load_state_dict(torch.load(tmp_path / 'backbone.pth'), strict=True)
    assert torch.equal(features(ours), features(theirs))


def test_se_variants_are_registered_and_count_as_expected():
    assert MODELS.build(dict(type='SELayer', channels=64)).squeeze_channels == 8
    assert MODELS.get('SELayer') is SELayer
    for name in ('SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR'):
        assert MODELS.get(name) is getattr(backbones, name)
    cifar = MODELS.build(dict(type='SEResNet_CIFAR', depth=18))
    assert n_params(cifar) == 11_264_074 - (512 * 10 + 10)  # the CIFAR-10 classifier minus its head
    v1c = MODELS.build(dict(type='SEResNetV1c', depth=34, se_cfg=dict(ratio=8)))
    assert v1c.layer1[0].se_layer.squeeze_channels == 8 and v1c.layer4[0].se_layer.squeeze_channels == 64


def test_per_stage_ratio_and_stages():
    model = ResNet(depth=18, se_cfg=dict(ratio=(16, 8, 4, 16), stages=(False, True, True, False)))
    widths = [[getattr(getattr(b, 'se_layer', None), 'squeeze_channels', None) for b in getattr(model, name)]
              for name in model.res_layers]
    assert widths == [[None, None], [16, 16], [64, 64], [None, None]]
    assert n_params(model) == 11_176_512 + 2 * (2 * 128 * 16 + 16 + 128) + 2 * (2 * 256 * 64 + 64 + 256)


def test_se_cfg_replaces_the_se_of_seresnet():
    model = SEResNet(depth=50, se_cfg=dict(ratio=8, stages=(True, True, True, False)))
    assert type(model.layer1[0].se_layer) is SELayer and model.layer1[0].se_layer.squeeze_channels == 32
    assert model.layer4[0].se_layer is None
    with pytest.raises(ValueError, match=r"SEResNet: se_ratio=8 and se_cfg .* se_cfg=dict\(ratio=8\)"):
        SEResNet(depth=50, se_ratio=8, se_cfg=dict())


def test_deepcopy_computes_with_its_own_se_weights():
    model = ResNet(depth=18, se_cfg=dict())
    before = features(model)
    twin = copy.deepcopy(model)
    assert torch.equal(features(twin), before)
    with torch.no_grad():
        for block in (*twin.layer1, *twin.layer2, *twin.layer3, *twin.layer4):
            block.se_layer.conv2.conv.weight.zero_(), block.se_layer.conv2.conv.bias.fill_(-100.0)  # gate ~ 0
    assert torch.equal(features(model), before)
    assert not torch.allclose(features(twin), before)


def test_with_cp_computes_the_same_and_trains_the_se():
    torch.manual_seed(0)
    plain = ResNet(depth=18, se_cfg=dict())
    checkpointed = ResNet(depth=18, with_cp=True, se_cfg=dict())
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)  # train mode: BN needs > 1 value per channel
    out = checkpointed(x)[0]
    assert torch.allclose(out, plain(x)[0])
    out.sum().backward()
    assert checkpointed.layer2[1].se_layer.conv1.conv.weight.grad.abs().sum() > 0


def test_se_survives_the_runners_syncbn_revert():
    torch.manual_seed(0)
    model = ResNet(depth=18, norm_cfg=dict(type='SyncBN'), se_cfg=dict())
    reference = ResNet(depth=18, se_cfg=dict())
    reference.load_state_dict(model.state_dict())
    model = revert_sync_batchnorm(model)  # what mmengine's Runner does on one device: new norm modules
    assert torch.equal(features(model), features(reference))


def test_frozen_stages_freeze_their_se():
    model = ResNet(depth=18, frozen_stages=1, se_cfg=dict())
    assert not model.layer1[0].se_layer.conv1.conv.weight.requires_grad
    assert model.layer2[0].se_layer.conv1.conv.weight.requires_grad


@pytest.mark.parametrize('se_cfg, error, match', [
    (dict(rato=16), ValueError, r"ResNet: unknown se_cfg key\(s\) \['rato'\]; allowed: \['ratio'"),
    (dict(ratio=0), ValueError, r"ResNet: se_cfg 'ratio' must be a positive"),
    (dict(ratio=(16, 16)), ValueError, r"ResNet: se_cfg 'ratio' needs one entry per stage \(4\)"),
    (dict(squeeze='median'), ValueError, r"ResNet: se_cfg 'squeeze' must be one of 'avg', 'max', 'avgmax'"),
    (dict(stages=(1, 1, 1, 1)), TypeError, r"ResNet: se_cfg 'stages' must be a tuple of 4 bools"),
    ([16], TypeError, r'ResNet: se_cfg must be a dict; got list'),
])
def test_bad_se_cfg_fails_at_build_naming_the_key(se_cfg, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type='ResNet', depth=18, se_cfg=se_cfg))


@pytest.mark.parametrize('backbone', [
    dict(type='ShuffleNetV2'), dict(type='VisionTransformer', arch='b'), dict(type='DenseNet', arch='121'),
    dict(type='Res2Net', depth=50),
], ids=lambda cfg: cfg['type'])
def test_backbones_that_cannot_take_se_fail_naming_type_and_key(backbone):
    model = dict(type='ImageClassifier', backbone=dict(backbone, se_cfg=dict()))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'se_cfg'"):
        MODELS.build(model)


def test_a_resnet_subclass_with_other_blocks_fails_naming_them():
    class Custom(backbones.TakesSECfg, stock.Res2Net):
        pass
    with pytest.raises(TypeError, match=r"^Custom does not take 'se_cfg' with Bottle2neck blocks\..*: ResNet, "):
        Custom(depth=50, se_cfg=dict())


def test_import_changes_no_framework_class_or_function():
    """The registry entries change; no attribute of a stock class, of MODELS or of mmengine does."""
    code = textwrap.dedent('''
        import inspect, mmengine.registry, mmpretrain.models as m
        from mmpretrain.registry import MODELS
        def snapshot():
            classes = [getattr(m, n) for n in dir(m) if inspect.isclass(getattr(m, n))]
            return {(c, k): v for c in classes for k, v in vars(c).items()} | {
                ('MODELS', k): v for k, v in vars(MODELS).items() if k not in ('_module_dict', '_imported')} | {
                ('registry', k): v for k, v in vars(mmengine.registry.Registry).items()}
        before = snapshot()
        import se_plugins
        assert MODELS.get('ResNet').__module__ == 'se_plugins.mmpretrain.backbones'
        after = snapshot()
        changed = [k for k in before if after.get(k) is not before[k]]
        print(len(before), changed)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split()[1:] == ['[]'] and int(out.split()[0]) > 1000


# Shipped SE-ResNet config -> (the timm model it equals, its parameter count in timm 1.0.31).
TIMM_TWINS = {
    'se-resnet18_8xb32_in1k.py': ('seresnet18', 11_779_624), 'se-resnet34_8xb32_in1k.py': ('seresnet34', 21_960_416),
    'se-resnet50_8xb32_in1k.py': ('seresnet50', 28_088_024),
    'se-resnet101_8xb32_in1k.py': ('seresnet101', 49_326_872),
    'se-resnet152_8xb32_in1k.py': ('seresnet152', 66_821_848),
    'se-resnetv1d152_8xb32_in1k.py': ('seresnet152d', 66_841_080),
    'se-resnetv1d200_8xb32_in1k.py': ('seresnet200d', 71_855_096),
    'se-resnetv1d269_8xb32_in1k.py': ('seresnet269d', 113_672_760),
    'se-resnext26d-32x4d_8xb32_in1k.py': ('seresnext26d_32x4d', 16_809_512),
    'se-resnext50-32x4d_8xb32_in1k.py': ('seresnext50_32x4d', 27_559_896),
    'se-resnext101-32x4d_8xb32_in1k.py': ('seresnext101_32x4d', 48_955_416),
    'se-resnext101-32x8d_8xb32_in1k.py': ('seresnext101_32x8d', 93_569_048),
    'se-resnext101d-32x8d_8xb32_in1k.py': ('seresnext101d_32x8d', 93_588_280),
    'se-resnext101-64x4d_8xb32_in1k.py': ('seresnext101_64x4d', 88_232_984),
}


@contextlib.contextmanager
def on_meta():
    """Build on the meta device (no memory); ResNet's drop-path rates (``linspace(...).item()``) stay on the CPU."""
    linspace = torch.linspace
    with torch.device('meta'), mock.patch.object(torch, 'linspace',
                                                 lambda *a, **k: linspace(*a, **{'device': 'cpu', **k})):
        yield


@pytest.mark.parametrize('name', TIMM_TWINS)
def test_se_resnet_configs_count_exactly_as_their_timm_model(name):
    timm = pytest.importorskip('timm')
    timm_name, pinned = TIMM_TWINS[name]
    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.custom_imports.imports == ['se_plugins'] and cfg.model.backbone.se_cfg == dict(ratio=16)
    assert cfg.data_preprocessor.to_rgb is True and cfg.model.head.num_classes == 1000
    with on_meta():
        model = MODELS.build(cfg.model)
    reference = timm.create_model(timm_name, device='meta')
    assert n_params(model) == n_params(reference) == pinned
    deep, avg_down = type(reference.conv1) is torch.nn.Sequential, type(reference.layer2[0].downsample[0])
    assert (model.backbone.deep_stem, model.backbone.avg_down) == (deep, avg_down is torch.nn.AvgPool2d)
    assert list(model.backbone.stage_blocks) == [len(getattr(reference, f'layer{i}')) for i in range(1, 5)]


@pytest.mark.parametrize('backbone, depth, blocks', [
    *[(b, 26, [2, 2, 2, 2]) for b in ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'SEResNetV1c', 'SEResNetV1d')],
    ('ResNet', 200, [3, 24, 36, 3]), ('ResNeXt', 269, [3, 30, 48, 8]),  # (the configs build 200 and 269 on V1d)
])
def test_timm_depths_build_on_our_backbones_only(backbone, depth, blocks):
    with on_meta():
        model = MODELS.build(dict(type=backbone, depth=depth, se_cfg=dict()))
    assert [len(getattr(model, layer)) for layer in model.res_layers] == list(model.stage_blocks) == blocks
    assert model.layer4[0].se_layer.squeeze_channels == 128
    with pytest.raises(KeyError, match=f'invalid depth {depth}'):
        getattr(stock, backbone.removeprefix('SE'))(depth=depth)


def test_stock_depth_tables_are_unchanged():
    assert [list(c.arch_settings) for c in (stock.ResNet, stock.ResNetV1c, stock.ResNetV1d)] == [
        [18, 34, 50, 101, 152]] * 3
    assert list(stock.ResNeXt.arch_settings) == [50, 101, 152]
    assert backbones.ResNeXt.arch_settings[26][0] is stock.backbones.resnext.Bottleneck
    assert backbones.ResNet.arch_settings[269][0] is stock.backbones.resnet.Bottleneck


@pytest.mark.parametrize('name', ['se-resnet18_8xb32_in1k.py', 'se-resnext26d-32x4d_8xb32_in1k.py'])
def test_timm_weights_converted_give_timms_logits(name):
    timm = pytest.importorskip('timm')
    from se_plugins.convert import convert
    torch.manual_seed(0)
    reference = timm.create_model(TIMM_TWINS[name][0]).eval()
    with torch.no_grad():
        for m in reference.modules():  # random BN statistics, so that eval mode is not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.weight.uniform_(0.5, 1)
    model = MODELS.build(Config.fromfile(str(CONFIGS / name)).model)
    model.load_state_dict(convert(reference.state_dict(), to='mmpretrain'), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(logits(model, x), reference(x), rtol=1e-5, atol=1e-6)
