"""timm's SE models to MMPretrain configs and back: every twin MMPretrain has a network for, and refusals."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

timm = pytest.importorskip('timm')
pytest.importorskip('mmpretrain')
from mmengine.config import Config  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

import se_plugins  # noqa: E402,F401
from se_plugins.convert import CheckpointError, convert, detect_family, refuse_no_counterpart  # noqa: E402

CONFIGS = Path(__file__).parents[1] / 'configs' / 'se_plugins'
TOOL = Path(__file__).parents[1] / 'tools' / 'convert_checkpoint.py'
# timm SE model -> the shipped MMPretrain config that builds the same network.
MM_CONFIG = {
    'seresnet18': 'se-resnet18_8xb32_in1k.py', 'seresnet34': 'se-resnet34_8xb32_in1k.py',
    'seresnet50': 'se-resnet50_8xb32_in1k.py', 'seresnet101': 'se-resnet101_8xb32_in1k.py',
    'seresnet152': 'se-resnet152_8xb32_in1k.py', 'seresnet152d': 'se-resnetv1d152_8xb32_in1k.py',
    'seresnet200d': 'se-resnetv1d200_8xb32_in1k.py', 'seresnet269d': 'se-resnetv1d269_8xb32_in1k.py',
    'seresnext26d_32x4d': 'se-resnext26d-32x4d_8xb32_in1k.py', 'seresnext50_32x4d': 'se-resnext50-32x4d_8xb32_in1k.py',
    'seresnext101_32x4d': 'se-resnext101-32x4d_8xb32_in1k.py',
    'seresnext101_32x8d': 'se-resnext101-32x8d_8xb32_in1k.py',
    'seresnext101d_32x8d': 'se-resnext101d-32x8d_8xb32_in1k.py',
    'seresnext101_64x4d': 'se-resnext101-64x4d_8xb32_in1k.py',
    'regnety_002': 'regnety-200mf_8xb128_in1k.py', 'regnety_004': 'regnety-400mf_8xb128_in1k.py',
    'regnety_006': 'regnety-600mf_8xb128_in1k.py', 'regnety_008': 'regnety-800mf_8xb128_in1k.py',
    'regnety_008_tv': 'regnety-800mf-tv_8xb128_in1k.py', 'regnety_016': 'regnety-1.6gf_8xb128_in1k.py',
    'regnety_032': 'regnety-3.2gf_8xb64_in1k.py', 'regnety_040': 'regnety-4.0gf_8xb64_in1k.py',
    'regnety_064': 'regnety-6.4gf_8xb64_in1k.py', 'regnety_080': 'regnety-8.0gf_8xb64_in1k.py',
    'regnety_080_tv': 'regnety-8.0gf-tv_8xb64_in1k.py', 'regnety_120': 'regnety-12gf_8xb64_in1k.py',
    'regnety_160': 'regnety-16gf_8xb64_in1k.py', 'regnety_320': 'regnety-32gf_8xb64_in1k.py',
    'regnety_640': 'regnety-64gf_8xb64_in1k.py', 'regnety_1280': 'regnety-128gf_8xb64_in1k.py',
    'regnety_2560': 'regnety-256gf_8xb64_in1k.py',
}
# timm SE models with no MMPretrain counterpart, and what the refusal says.
REFUSED = {'seresnet50t': 'tiered deep stem', 'seresnext26t_32x4d': 'tiered deep stem',
           'senet154': '3x3 shortcut convs', 'seresnet33ts': 'ByobNet', 'seresnext26ts': 'ByobNet'}


def build_mm(config: str, **device) -> torch.nn.Module:
    with torch.device(device.get('device', 'cpu')):
        return MODELS.build(Config.fromfile(str(CONFIGS / config)).model)


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Random values everywhere (BN statistics on the activations' scale), so that a misplaced tensor shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if 'running_var' in name else
                             torch.randn_like(tensor) * (0.02 if 'running_mean' in name else 0.1) +
                             (1.0 if name.endswith('bn.weight') or 'bn' in name and name.endswith('weight') else 0))
    return model


@pytest.mark.parametrize('source', MM_CONFIG)
def test_converted_keys_and_shapes_are_the_configs(source):
    """Meta device: timm's weights converted have exactly the keys and shapes of the shipped config's model."""
    theirs = timm.create_model(source, device='meta')
    # (MMPretrain's ResNet cannot be built on the meta device: it calls .item() on a tensor)
    ours = build_mm(MM_CONFIG[source], device='meta' if source.startswith('regnet') else 'cpu')
    converted = convert(theirs.state_dict(), 'mmpretrain')
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in ours.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    back = convert(converted, 'timm')
    assert list(back) == list(convert(theirs.state_dict(), 'timm'))


@pytest.mark.parametrize('source', ['regnety_002', 'regnety_008_tv', 'seresnet18', 'seresnext26d_32x4d',
                                    pytest.param('regnety_040', marks=pytest.mark.slow),
                                    pytest.param('seresnet152d', marks=pytest.mark.slow)])
def test_converted_weights_compute_the_same_in_float64(source):
    """timm's model and the config's, same weights: same logits in eval and train, float64; round trip exact."""
    theirs = randomize(timm.create_model(source)).double()
    ours = build_mm(MM_CONFIG[source]).double()
    converted = convert(theirs.state_dict(), 'mmpretrain')
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for train in (False, True):
        ours.train(train), theirs.train(train)
        with torch.no_grad():
            a, b = ours(x, mode='tensor'), theirs(x)
        assert (a - b).abs().max().item() < 1e-10 * b.abs().max().item() and b.std().item() > 1e-3
    native = convert(theirs.state_dict(), 'timm')
    back = convert(converted, 'timm')
    assert back.keys() == native.keys() and all(torch.equal(back[k], native[k]) for k in back)


def test_regnet_is_told_from_resnext_by_its_shapes():
    def mm_keys(name: str) -> dict:
        return convert(timm.create_model(name, device='meta').state_dict(), 'mmpretrain')
    assert detect_family(mm_keys('regnety_002')) == 'regnet' and detect_family(mm_keys('seresnext50_32x4d')) == 'resnet'
    assert detect_family(timm.create_model('seresnet33ts', device='meta').state_dict()) == 'byobnet'


@pytest.mark.parametrize('source', REFUSED)
def test_no_counterpart_is_refused_from_the_keys(source):
    with pytest.raises(CheckpointError, match=rf'{REFUSED[source]}.*no MMPretrain counterpart|'
                                              rf'no MMPretrain counterpart.*{REFUSED[source]}'):
        convert(timm.create_model(source, device='meta').state_dict(), 'mmpretrain')


@pytest.mark.parametrize('name', ['seresnetaa50d', 'se_resnextaa101d_32x8d_plugin', 'seresnextaa201d_32x8d',
                                  'se_resnet50t_plugin', 'senet154', 'se_net154_plugin', 'se_resnext26ts_plugin'])
def test_no_counterpart_is_refused_by_name(name):
    with pytest.raises(CheckpointError, match=rf'{name} has no MMPretrain counterpart'):
        refuse_no_counterpart(name)
    for fine in ('seresnet50d', 'se_resnet152d_plugin', 'seresnext101d_32x8d', 'se_regnety_040_plugin'):
        refuse_no_counterpart(fine)


def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


def test_tool_regnety_both_ways(tmp_path):
    theirs = randomize(timm.create_model('regnety_002')).eval()
    torch.save(theirs.state_dict(), tmp_path / 'regnety_002.pth')
    result = run_tool(tmp_path / 'regnety_002.pth', tmp_path / 'mm.pth', '--to', 'mmpretrain', '--model', 'regnety_002')
    assert result.returncode == 0, result.stderr
    from mmengine.runner import load_checkpoint
    ours = build_mm(MM_CONFIG['regnety_002'])
    load_checkpoint(ours, str(tmp_path / 'mm.pth'), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours.eval()(x, mode='tensor') - theirs(x)).abs().max() < 1e-5
    assert run_tool(tmp_path / 'mm.pth', tmp_path / 'back.safetensors', '--to', 'timm').returncode == 0
    twin = timm.create_model('se_regnety_002_plugin', pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(tmp_path / 'back.safetensors'))).eval()
    with torch.no_grad():
        assert (twin(x) - theirs(x)).abs().max() < 1e-5


def test_tool_refuses_an_anti_aliased_model_by_name_and_writes_nothing(tmp_path):
    torch.save(timm.create_model('resnet18d').state_dict(), tmp_path / 'aa.pth')  # any ResNet-D keys
    result = run_tool(tmp_path / 'aa.pth', tmp_path / 'out.pth', '--to', 'mmpretrain', '--model', 'seresnetaa50d')
    assert result.returncode == 2 and 'seresnetaa50d has no MMPretrain counterpart' in result.stderr
    assert 'anti-aliased' in result.stderr and not (tmp_path / 'out.pth').exists()
