"""The paper's SE design space as se_cfg: positions in both frameworks, and its parameter counts."""
import copy
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import nn

import se_plugins  # noqa: F401  (registers the timm models and MMPretrain's se_cfg)
from se_plugins import SELayer
from se_plugins.config import POSITIONS

torch.set_num_threads(1)


def timm_model(depth: int = 26, **se_cfg) -> nn.Module:
    return timm.create_model(f'se_resnet{depth}_plugin', num_classes=10, se_cfg=se_cfg)


def mmpretrain_model(depth: int = 50, **se_cfg) -> nn.Module:
    return MODELS.build(dict(type='ResNet', depth=depth, se_cfg=se_cfg))


BUILD = {'timm': timm_model, 'mmpretrain': mmpretrain_model}
# Parts of a bottleneck as each framework names them: convs, norms (1x1, 3x3, 1x1) and SE at 'standard'.
PARTS = {'timm': (('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3'), 'se'),
         'mmpretrain': (('conv1', 'norm1'), ('conv2', 'norm2'), ('conv3', 'norm3'), 'se_layer')}
SE_NAME = {'pre': 'se_pre', 'post': 'se_post', 'identity': 'downsample.se', '3x3': 'se_3x3', '3x3_act': 'se_3x3_act'}


def se_of(block: nn.Module, framework: str, position: str) -> SELayer:
    return block.get_submodule(PARTS[framework][3] if position == 'standard' else SE_NAME[position])


def randomize_norms(model: nn.Module) -> None:
    """BatchNorms far from identity (and SE biases non-zero), so that every placement matters."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2), m.running_var.uniform_(0.5, 2)
            elif isinstance(m, SELayer):
                for p in m.parameters():
                    p.normal_(0, 0.3)


def reference(block: nn.Module, framework: str, position: str, x: torch.Tensor, with_se: bool) -> torch.Tensor:
    """The block's function written out, with SE where the paper puts it (or nowhere)."""
    bare = copy.deepcopy(block)
    for m in bare.modules():  # the plain block: none of our hooks
        m._forward_hooks.clear(), m._forward_pre_hooks.clear()
    se = se_of(bare, framework, position)

    def gate(t, here):
        return t * se.excite(se.pool(t))[:, :, None, None] if with_se and position == here else t

    (c1, n1), (c2, n2), (c3, n3), _ = PARTS[framework]
    h = F.relu(getattr(bare, n1)(getattr(bare, c1)(gate(x, 'pre'))))
    h = gate(F.relu(gate(getattr(bare, n2)(getattr(bare, c2)(h)), '3x3')), '3x3_act')
    h = gate(getattr(bare, n3)(getattr(bare, c3)(h)), 'standard')
    shortcut = x
    if bare.downsample is not None:
        for name, m in bare.downsample.named_children():
            shortcut = shortcut if name == 'se' else m(shortcut)
    return gate(F.relu(h + gate(shortcut, 'identity')), 'post')


@pytest.mark.parametrize('framework', ['timm', 'mmpretrain'])
@pytest.mark.parametrize('position', POSITIONS)
def test_position_is_where_the_paper_puts_it(framework, position):
    model = BUILD[framework](position=position)
    model.eval()  # (MMPretrain's ResNet.train returns None)
    randomize_norms(model)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():  # blocks with a projection shortcut (layer1.0, layer2.0) and without (layer1.1)
        inputs = {'layer1.0': x, 'layer1.1': model.layer1[0](x), 'layer2.0': model.layer1(x)}
        for name, x_in in inputs.items():
            block = model.get_submodule(name)
            out = block(x_in.clone())
            torch.testing.assert_close(out, reference(block, framework, position, x_in, with_se=True))
            assert (out - reference(block, framework, position, x_in, with_se=False)).abs().max() > 1e-3


@pytest.mark.parametrize('framework', ['timm', 'mmpretrain'])
@pytest.mark.parametrize('position', POSITIONS)
def test_position_names_and_channels(framework, position):
    model = BUILD[framework](position=position)
    keys = model.state_dict().keys()
    se_name = PARTS[framework][3] if position == 'standard' else SE_NAME[position]
    for block in ('layer1.0', 'layer1.1', 'layer4.2' if framework == 'mmpretrain' else 'layer4.1'):
        assert f'{block}.{se_name}.conv1.conv.weight' in keys
    other_names = {PARTS[framework][3], *SE_NAME.values()} - {se_name}
    assert not [k for k in keys for n in other_names if re.match(rf'layer\d\.\d+\.{re.escape(n)}\.', k)]
    channels = {'pre': 256, '3x3': 128, '3x3_act': 128}.get(position, 512)  # layer2.0: 256 in, width 128, 512 out
    assert se_of(model.layer2[0], framework, position).channels == channels


@pytest.mark.parametrize('framework', ['timm', 'mmpretrain'])
@pytest.mark.parametrize('position', POSITIONS)
def test_forward_backward_and_not_a_no_op(framework, position):
    torch.manual_seed(0)
    model = BUILD[framework](position=position)
    randomize_norms(model)  # (timm zero-initialises each branch's last BN: no gradient would reach SE there)
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, SELayer):  # same network, SE made the identity function
            m.excite = lambda s: torch.ones_like(s)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    out = out[-1] if isinstance(out, tuple) else out
    out.square().mean().backward()
    ses = [m for m in model.modules() if isinstance(m, SELayer)]
    assert len(ses) == (8 if framework == 'timm' else 16)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for se in ses for p in se.parameters())
    with torch.no_grad():
        ref = plain(x)
    ref = ref[-1] if isinstance(ref, tuple) else ref
    assert (out.detach() - ref).abs().max() > 1e-4
    clone = copy.deepcopy(model)  # the hooks follow the copy's SE layers
    model.eval(), clone.eval()
    with torch.no_grad():
        a, b = model(x), clone(x)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('framework', ['timm', 'mmpretrain'])
@pytest.mark.parametrize('position', ['pre', 'post', 'identity'])
def test_basic_blocks_take_every_position_but_3x3(framework, position):
    model = BUILD[framework](18, position=position)
    out = model(torch.randn(2, 3, 32, 32))
    (out[-1] if isinstance(out, tuple) else out).sum().backward()
    assert sum(isinstance(m, SELayer) for m in model.modules()) == 8
    for spatial in ('3x3', '3x3_act'):
        with pytest.raises(ValueError, match=rf"position '{spatial}' needs bottleneck blocks"):
            BUILD[framework](18, position=spatial)


@pytest.mark.parametrize('framework', ['timm', 'mmpretrain'])
def test_ratio_of_block_input(framework):
    """RegNetY's width rule: round(block input / ratio); layer2.0 takes 256 channels, the others 512."""
    model = BUILD[framework](position='3x3_act', ratio=4, divisor=1, ratio_of='block_input')
    assert [b.se_3x3_act.squeeze_channels for b in model.layer2] == [64] + [128] * (len(model.layer2) - 1)
    assert model.layer2[0].se_3x3_act.channels == 128
    assert se_of(BUILD[framework](ratio=4, divisor=1).layer2[0], framework, 'standard').squeeze_channels == 128
    with pytest.raises(ValueError, match=r"se_cfg 'ratio_of' must be one of \('channels', 'block_input'\); got 'x'"):
        BUILD[framework](ratio_of='x')


def test_stages_and_positions_combine():
    model = timm_model(position='post', stages=(False, False, True, True), ratio=(4, 4, 8, 16))
    assert [name for name, m in model.named_modules() if isinstance(m, SELayer)] == [
        'layer3.0.se_post', 'layer3.1.se_post', 'layer4.0.se_post', 'layer4.1.se_post']
    assert model.layer3[0].se_post.squeeze_channels == 1024 // 8


# Hu et al., TPAMI 2019, Sec. 6 (ablations), ResNet-50 at 1000 classes; the paper's stage 2 is our stage 0.
PAPER_R50 = [
    (None, 25.6),
    (dict(ratio=2), 45.7), (dict(ratio=4), 35.7), (dict(ratio=8), 30.7), (dict(ratio=16), 28.1), (dict(ratio=32), 26.9),
    (dict(stages=(True, False, False, False)), 25.6), (dict(stages=(False, True, False, False)), 25.7),
    (dict(stages=(False, False, True, False)), 26.4), (dict(stages=(True, True, True, True)), 28.1),
    (dict(position='3x3'), 25.8),
]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('se_cfg, paper_m', PAPER_R50, ids=[str(c) for c, _ in PAPER_R50])
def test_paper_parameter_counts_resnet50(se_cfg, paper_m):
    if se_cfg is None:
        in_timm = count(timm.create_model('resnet50', num_classes=1000))
        in_mmpretrain = count(MODELS.build(dict(type='ResNet', depth=50)))
    else:
        in_timm = count(timm.create_model('se_resnet50_plugin', num_classes=1000, se_cfg=se_cfg))
        in_mmpretrain = count(MODELS.build(dict(type='ResNet', depth=50, se_cfg=se_cfg)))
    in_mmpretrain += 2048 * 1000 + 1000  # the linear head the timm model has
    assert in_timm == in_mmpretrain
    assert abs(in_timm / 1e6 - paper_m) < 0.1, (in_timm, paper_m)


def record_se(model: nn.Module, name: str, after: str):
    """Hooks that record what SE ``name`` gets and gives, and what module ``after`` then gets."""
    seen = {}
    model.get_submodule(name).register_forward_hook(lambda m, a, out: seen.update(se_in=a[0], se_out=out))
    model.get_submodule(after).register_forward_pre_hook(lambda m, a: seen.update(next_in=a[0]))
    return seen


INCEPTION_LIKE = {  # model, an SE, the module whose input is that SE's output, count of SE layers
    'timm-inception_v3': (lambda: timm.create_model('se_inception_v3_plugin', num_classes=10),
                          'Mixed_5b.se', 'Mixed_5c', 11),
    'mmpretrain-InceptionV3': (lambda: MODELS.build(dict(type='InceptionV3', num_classes=10, se_cfg=dict())),
                               'Mixed_6e.se', 'Mixed_7a', 11),
    'mmpretrain-MobileNetV2': (lambda: MODELS.build(dict(type='MobileNetV2', se_cfg=dict())),
                               'layer2.0.conv.1.se', 'layer2.0.conv.2', 17),
}


@pytest.mark.parametrize('kind', INCEPTION_LIKE)
def test_se_after_each_unit(kind):
    build, se_name, after, n_se = INCEPTION_LIKE[kind]
    model = build()
    seen = record_se(model, se_name, after)
    out = model(torch.randn(2, 3, 75, 75))
    out = out[-1] if isinstance(out, tuple) else out
    out.square().mean().backward()
    ses = [m for m in model.modules() if isinstance(m, SELayer)]
    assert len(ses) == n_se and all(p.grad is not None for se in ses for p in se.parameters())
    assert seen['next_in'] is seen['se_out'] and not torch.equal(seen['se_in'], seen['se_out'])


def test_se_inception_resnet_v2_rescales_the_residual_branch():
    model = timm.create_model('se_inception_resnet_v2_plugin', num_classes=10)
    block = model.repeat[0]
    seen = record_se(model, 'repeat.0.conv2d.se', 'repeat.0.act')
    block.register_forward_pre_hook(lambda m, a: seen.update(block_in=a[0]))
    block.conv2d.register_forward_pre_hook(lambda m, a: seen.update(branch_in=a[0]))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 75, 75))
        branch = F.conv2d(seen['branch_in'], block.conv2d.weight, block.conv2d.bias)
    torch.testing.assert_close(seen['se_in'], branch)  # SE gets the branch's up-projection ...
    torch.testing.assert_close(seen['next_in'], seen['se_out'] * block.scale + seen['block_in'])  # ... before the sum
    assert sum(isinstance(m, SELayer) for m in model.modules()) == 40
    assert [model.get_submodule(n).conv2d.se.channels for n in ('repeat.0', 'repeat_1.0', 'block8')] == [320, 1088, 2080]


@pytest.mark.parametrize('name', ['se_inception_v3_plugin', 'se_inception_resnet_v2_plugin'])
def test_inception_takes_only_the_standard_position(name):
    with pytest.raises(ValueError, match="position' must be 'standard'"):
        timm.create_model(name, se_cfg=dict(position='pre'))


@pytest.mark.parametrize('shape', [(2, 64, 100), (2, 64, 4, 8, 8)], ids=['1d-audio', '3d-video'])
def test_se_on_1d_and_3d_feature_maps(shape):
    se = SELayer(64, ratio=16)
    x = torch.randn(shape, requires_grad=True)
    y = se(x)
    y.sum().backward()
    gate = (y / x).detach().flatten(2)
    assert y.shape == x.shape and torch.allclose(gate, gate[..., :1].expand_as(gate), atol=1e-5)
