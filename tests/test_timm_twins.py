"""The RegNetY and ByobNet twins: timm's networks with our SE where timm's SE models have it."""
import pytest
import torch

timm = pytest.importorskip('timm')
import se_plugins  # noqa: E402,F401  (registers the models)
from se_plugins.convert import from_timm_native  # noqa: E402
from se_plugins.timm import se_byobnet, se_regnet  # noqa: E402
from se_plugins.timm.se_byobnet import SEByoBottleneck  # noqa: E402
from se_plugins.timm.se_regnet import SERegBottleneck  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')

TWINS = {**se_byobnet.TIMM_SOURCES, **se_regnet.TIMM_SOURCES}
# A few counts pinned (the test also compares every twin with timm's model at run time).
PINNED = {'se_resnet33ts_plugin': 19_779_200, 'se_resnext26ts_plugin': 10_388_064, 'se_regnety_002_plugin': 3_162_996,
          'se_regnety_040_plugin': 20_646_656, 'se_regnety_008_tv_plugin': 6_432_512,
          'se_regnety_2560_plugin': 1_282_601_138}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def se_blocks(model: torch.nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, (SEByoBottleneck, SERegBottleneck))]


@pytest.mark.parametrize('name', TWINS)
def test_twin_structure(name):
    """Meta device: timm's own model class, SE in every block where timm has it, every key and shape of
    timm's model (after the SE rename), its parameter count and feature channels."""
    source = TWINS[name]
    ours, theirs = timm.create_model(name, device='meta'), timm.create_model(source, device='meta')
    assert isinstance(ours, type(theirs))
    blocks = se_blocks(ours)
    attribute = 'attn' if name in se_byobnet.TIMM_SOURCES else 'se'
    assert blocks and all(isinstance(getattr(b, attribute), se_plugins.SELayer) for b in blocks)
    assert sum(isinstance(m, se_plugins.SELayer) for m in ours.modules()) == len(blocks)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in from_timm_native(theirs.state_dict()).items()}
    assert count(ours) == count(theirs) == PINNED.get(name, count(theirs))
    assert ours.feature_info == theirs.feature_info
    assert tuple(ours(torch.empty(1, 3, 64, 64, device='meta')).shape) == (1, 1000)


def test_regnety_squeeze_width_is_a_quarter_of_the_block_input():
    ours = timm.create_model('se_regnety_016_plugin', device='meta')
    theirs = timm.create_model('regnety_016', device='meta')
    widths = [(b.se.channels, b.se.squeeze_channels) for b in se_blocks(ours)]
    assert widths == [(b.se.fc1.in_channels, b.se.fc1.out_channels) for b in theirs.modules()
                      if isinstance(b, timm.models.regnet.Bottleneck)]
    assert widths[:3] == [(48, 8), (48, 12), (120, 12)]  # round(32 / 4), round(48 / 4), then stage 2


@pytest.mark.parametrize('name, se', [('se_regnety_002_plugin', 'se'), ('se_resnext26ts_plugin', 'attn')])
def test_se_cfg_keys_override_the_sources_se(name, se):
    se_cfg = dict(ratio=(8, 8, 2, 2), stages=(False, True, True, True), excitation='linear', squeeze='avgmax')
    model = timm.create_model(name, device='meta', se_cfg=se_cfg)
    blocks = se_blocks(model)
    stage1 = list((model.stages[0] if se == 'attn' else model.s1).children())
    assert stage1 and all(getattr(b, se) is None for b in stage1)
    layers = [getattr(b, se) for b in blocks if getattr(b, se) is not None]
    assert all(s.excitation == 'linear' and s.squeeze == 'avgmax' for s in layers)
    last = getattr(blocks[-1], se)
    if se == 'se':  # ratio of the block input, divisor 1 (RegNetY's rule): 368 / 2
        assert (last.channels, last.squeeze_channels) == (368, 184)
    else:  # ratio of the channels, divisor 8 (timm's ByobNet SE rule): 512 // 2
        assert (last.channels, last.squeeze_channels) == (512, 256)


@pytest.mark.parametrize('name', ['se_regnety_002_plugin', 'se_resnext26ts_plugin'])
@pytest.mark.parametrize('position, attribute', [('standard', None), ('pre', 'se_pre'), ('post', 'se_post'),
                                                 ('3x3_act', None)])
def test_positions_run_and_train(name, position, attribute):
    byob = name in se_byobnet.TIMM_SOURCES
    attribute = attribute or {('standard', True): 'attn_last', ('standard', False): 'se_last',
                              ('3x3_act', True): 'attn', ('3x3_act', False): 'se'}[position, byob]
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, zero_init_last=False, se_cfg=dict(position=position))
    blocks = se_blocks(model)
    assert all(isinstance(getattr(b, attribute), se_plugins.SELayer) for b in blocks)
    assert sum(isinstance(m, se_plugins.SELayer) for m in model.modules()) == len(blocks)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    grad = getattr(blocks[0], attribute).conv1.conv.weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize('name', ['se_regnety_002_plugin', 'se_resnet33ts_plugin'])
@pytest.mark.parametrize('position', ['3x3', 'identity'])
def test_positions_the_blocks_lack_are_refused(name, position):
    block = 'SEByoBottleneck' if name in se_byobnet.TIMM_SOURCES else 'SERegBottleneck'
    with pytest.raises(ValueError, match=rf"{name}: se_cfg position '{position}' does not exist in {block} blocks; "
                                         r"their positions: \('standard', 'pre', 'post', '3x3_act'\)"):
        timm.create_model(name, device='meta', se_cfg=dict(position=position))


def test_se_ratio_is_refused_on_regnety():
    with pytest.raises(ValueError, match=r"se_ratio=0.5 is set from se_cfg.*se_ratio=0.25 is ratio=4"):
        timm.create_model('se_regnety_002_plugin', device='meta', se_ratio=0.5)
