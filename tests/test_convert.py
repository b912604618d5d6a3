"""Weights across timm, torchvision and MMPretrain: identical outputs, exact round trips, clear refusals."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

timm = pytest.importorskip('timm')
pytest.importorskip('mmpretrain')
from mmpretrain.registry import MODELS  # noqa: E402

from se_plugins.convert import (CheckpointError, convert, detect_format, fit_to_model,  # noqa: E402
                                mmpretrain_to_timm, timm_to_mmpretrain)

TOOL = Path(__file__).parents[1] / 'tools' / 'convert_checkpoint.py'
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def mm_classifier(backbone: dict, channels: int, num_classes: int = 10) -> torch.nn.Module:
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                             head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels)))


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Random values everywhere, BN statistics included, so that a misplaced tensor shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if 'running_var' in name else torch.randn_like(tensor) * 0.1)
    return model.eval()


PAIRS = [  # timm model, the MMPretrain backbone that computes the same function, its out channels
    ('seresnet50', dict(type='SEResNet', depth=50), 2048),
    ('seresnet50', dict(type='ResNet', depth=50, se_cfg=dict()), 2048),
    ('seresnet18', dict(type='ResNet', depth=18, se_cfg=dict()), 512),
    ('seresnext50_32x4d', dict(type='ResNeXt', depth=50, groups=32, width_per_group=4, se_cfg=dict()), 2048),
    ('resnet50d+se', dict(type='SEResNetV1d', depth=50), 2048),
    ('seresnext50_32x4d', dict(type='SEResNeXt', depth=50, groups=32, width_per_group=4), 2048),
    ('resnet50d', dict(type='ResNetV1d', depth=50), 2048),
    ('resnet18d', dict(type='ResNetV1d', depth=18), 512),
    ('resnet34', dict(type='ResNet', depth=34), 512),
]


@pytest.mark.parametrize('timm_name, backbone, channels', PAIRS, ids=[f'{p[0]}-{p[1]["type"]}' for p in PAIRS])
def test_timm_to_mmpretrain_and_back(timm_name, backbone, channels):
    name, _, attn = timm_name.partition('+')
    theirs = randomize(timm.create_model(name, num_classes=10, **({'block_args': {'attn_layer': attn}} if attn else {})))
    ours = mm_classifier(backbone, channels).eval()
    converted = timm_to_mmpretrain(theirs.state_dict())
    assert detect_format(converted) == 'mmpretrain'
    ours.load_state_dict(converted, strict=True)
    with torch.no_grad():
        assert (ours(X, mode='tensor') - theirs(X)).abs().max() < 1e-5
    back = mmpretrain_to_timm(converted)
    native = convert(theirs.state_dict(), 'timm')  # timm's se.fc1 -> our se.conv1.conv
    assert back.keys() == native.keys() and all(torch.equal(back[k], native[k]) for k in back)


def test_timm_native_se_keys_are_renamed():
    keys = convert(timm.create_model('seresnet18').state_dict(), 'timm')
    assert 'layer1.0.se.conv1.conv.weight' in keys and not any('.se.fc' in k for k in keys)


def test_legacy_caffe_weights_are_refused_with_the_reason():
    legacy = timm.create_model('legacy_seresnet18').state_dict()
    for call in (detect_format, lambda sd: convert(sd, 'mmpretrain')):
        with pytest.raises(CheckpointError, match='stride on the first 1x1 conv'):
            call(legacy)


def test_wrong_architecture_lists_keys_and_shapes():
    model_state = convert(timm.create_model('seresnet50').state_dict(), 'timm')
    with pytest.raises(CheckpointError) as info:
        fit_to_model(convert(timm.create_model('seresnet18').state_dict(), 'timm'), model_state)
    message = str(info.value)
    assert 'shape: layer1.0.conv1.weight checkpoint (64, 64, 3, 3) vs model (64, 64, 1, 1)' in message
    assert 'missing: layer1.0.conv3.weight (256, 64, 1, 1)' in message
    assert 'missing: layer4.2.bn3.weight (2048,)' in message


def test_plain_checkpoint_fills_only_se_keys_and_names_them(caplog):
    model_state = convert(timm.create_model('seresnet18').state_dict(), 'timm')
    plain = timm.create_model('resnet18').state_dict()
    fitted = fit_to_model(plain, model_state)
    new = sorted(set(model_state) - set(plain))
    assert len(new) == 8 * 4 and all('.se.' in k for k in new)  # 8 blocks x (2 weights + 2 biases)
    assert all(torch.equal(fitted[k], plain[k]) for k in plain)
    assert '32 SE key(s) are not in the checkpoint' in caplog.text and new[0] in caplog.text


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_tool_round_trip_is_exact(tmp_path, suffix):
    state = convert(randomize(timm.create_model('seresnet18', num_classes=10)).state_dict(), 'timm')
    src = tmp_path / f'timm{suffix}'
    if suffix == '.pth':
        torch.save(state, src)
    else:
        from safetensors.torch import save_file
        save_file(state, src)
    result = run_tool(src, tmp_path / 'mm.pth', '--to', 'mmpretrain')
    assert result.returncode == 0, result.stderr
    assert 'timm -> mmpretrain' in result.stdout
    mm = torch.load(tmp_path / 'mm.pth', weights_only=True)
    assert mm['meta'] == {'converted_from': 'timm'} and 'backbone.layer1.0.se_layer.conv1.conv.weight' in mm['state_dict']
    assert run_tool(tmp_path / 'mm.pth', tmp_path / f'back{suffix}', '--to', 'timm').returncode == 0
    from se_plugins.io import load_state_dict
    back = load_state_dict(tmp_path / f'back{suffix}')
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


def test_tool_writes_nothing_on_failure(tmp_path):
    torch.save(timm.create_model('legacy_seresnet18').state_dict(), tmp_path / 'legacy.pth')
    result = run_tool(tmp_path / 'legacy.pth', tmp_path / 'out.pth', '--to', 'mmpretrain')
    assert result.returncode == 2 and 'legacy Caffe-ported' in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['legacy.pth']
    missing = run_tool(tmp_path / 'nope.pth', tmp_path / 'out.pth', '--to', 'timm')
    assert missing.returncode == 2 and 'checkpoint not found' in missing.stderr


def load_plugin(name: str, path: Path, **kwargs) -> torch.nn.Module:
    """timm's own loading path: pretrained=True with a local file, keys fixed by our checkpoint filter."""
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


@pytest.mark.parametrize('timm_name, plugin', [('seresnet50', 'se_resnet50_plugin'), ('seresnet18', 'se_resnet18_plugin'),
                                               ('seresnext50_32x4d', 'se_resnext50_32x4d_plugin')])
@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_timm_se_weights_load_through_timm_pretrained(tmp_path, timm_name, plugin, suffix):
    theirs = randomize(timm.create_model(timm_name))
    path = tmp_path / f'{timm_name}{suffix}'
    if suffix == '.pth':
        torch.save(theirs.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file(theirs.state_dict(), path)
    ours = load_plugin(plugin, path)
    with torch.no_grad():
        assert (ours(X) - theirs(X)).abs().max() < 1e-5


def test_mmpretrain_checkpoint_loads_into_timm_plugin(tmp_path):
    mm = randomize(mm_classifier(dict(type='ResNet', depth=50, se_cfg=dict()), 2048, num_classes=1000))
    torch.save({'meta': {'epoch': 3}, 'state_dict': mm.state_dict()}, tmp_path / 'epoch_3.pth')
    ours = load_plugin('se_resnet50_plugin', tmp_path / 'epoch_3.pth')
    with torch.no_grad():
        assert (ours(X) - mm(X, mode='tensor')).abs().max() < 1e-5


def test_plain_resnet_starts_an_se_model(tmp_path, caplog):
    plain = randomize(timm.create_model('resnet18'))
    torch.save(plain.state_dict(), tmp_path / 'resnet18.pth')
    ours = load_plugin('se_resnet18_plugin', tmp_path / 'resnet18.pth')
    loaded = ours.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in plain.state_dict().items())
    assert 'layer4.1.se.conv2.conv.bias' in caplog.text and '32 SE key(s)' in caplog.text


def test_timm_pretrained_refuses_wrong_architecture_and_legacy(tmp_path):
    torch.save(timm.create_model('seresnet18').state_dict(), tmp_path / 'r18.pth')
    with pytest.raises(CheckpointError, match=r'shape: layer1\.0\.conv1\.weight checkpoint \(64, 64, 3, 3\)'):
        load_plugin('se_resnet50_plugin', tmp_path / 'r18.pth')
    torch.save(timm.create_model('legacy_seresnet18').state_dict(), tmp_path / 'legacy.pth')
    with pytest.raises(CheckpointError, match='legacy Caffe-ported'):
        load_plugin('se_resnet18_plugin', tmp_path / 'legacy.pth')
