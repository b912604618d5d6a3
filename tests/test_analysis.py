"""Excitation analysis: recorded gates, per-class statistics, SE switched off, and the two CLI tools."""
from __future__ import annotations

import argparse
import copy
import doctest
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from scripts import PACK, TINY_MM_CONFIG, load_script
from se_plugins.analysis import ExcitationRecorder, ExcitationStats, identity_gates, se_layers, stage_of
from se_plugins.layers import SELayer

timm = pytest.importorskip('timm')
pytest.importorskip('matplotlib')

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(channels=(8, 16, 32, 64), zero_init_last=False)  # residual branches (and SE) matter from the start


def load_tool(name: str) -> ModuleType:
    return load_script(f'tools/analysis/{name}.py')


def force_gate(se: SELayer, gate: torch.Tensor) -> None:
    """Make ``se``'s gate the constant ``gate`` (C,): zero last weights, bias logit(gate)."""
    last = se.conv2.conv if se.conv2 is not None else se.fc2
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(gate).view_as(last.bias))


def tiny_timm(num_classes: int = 3) -> nn.Module:
    return timm.create_model('se_resnet18_plugin', num_classes=num_classes, **TINY).eval()


@pytest.mark.parametrize('excitation', ['conv', 'linear'])
def test_records_a_forced_gate(excitation: str) -> None:
    se = SELayer(8, squeeze_channels=4, excitation=excitation)
    gate = torch.linspace(0.05, 0.95, 8)
    force_gate(se, gate)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), se)
    with ExcitationRecorder(model) as recorder:
        model(torch.randn(2, 3, 6, 6))
        model(torch.randn(3, 3, 6, 6))
    gates = recorder.pop()
    assert list(gates) == ['1']
    torch.testing.assert_close(gates['1'], gate.expand(5, 8))
    model(torch.randn(2, 3, 6, 6))  # hooks are gone after the block
    assert recorder.pop() == {}


@pytest.mark.parametrize('grad', [False, True])
def test_records_the_lean_path_of_timm_models(grad: bool) -> None:
    """Inside the models SE after a norm takes the lean rescale: the gates are still recorded."""
    model = tiny_timm()
    gate = torch.full((16,), 0.25)
    force_gate(model.layer2[1].se, gate)
    with torch.set_grad_enabled(grad), ExcitationRecorder(model) as recorder:
        model(torch.randn(2, 3, 32, 32))
    gates = recorder.pop()
    assert list(gates) == [f'layer{s}.{b}.se' for s in range(1, 5) for b in range(2)]
    assert [g.shape for g in gates.values()] == [(2, c) for c in (8, 8, 16, 16, 32, 32, 64, 64)]
    torch.testing.assert_close(gates['layer2.1.se'], gate.expand(2, 16))


def test_records_mmpretrain_models() -> None:
    pytest.importorskip('mmpretrain')
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8, se_cfg=dict()))
    model.eval()
    gate = torch.full((64,), 0.875)
    force_gate(model.layer4[0].se_layer, gate)
    with torch.no_grad(), ExcitationRecorder(model) as recorder:
        model(torch.randn(2, 3, 16, 16))
    gates = recorder.pop()
    assert len(gates) == 8 and stage_of('backbone.layer4.0.se_layer') == 'backbone.layer4'
    torch.testing.assert_close(gates['layer4.0.se_layer'], gate.expand(2, 64))


def test_statistics_of_two_classes() -> None:
    stats = ExcitationStats(num_classes=3)  # class 2 has no images
    labels = torch.tensor([0, 1, 0, 1])
    gates = torch.tensor([[0.2, 0.5], [0.8, 0.5], [0.2, 0.5], [0.8, 0.5]])
    stats.update({'a.0.se': gates, 'b.0.se': torch.full((4, 2), 0.95)}, labels)
    torch.testing.assert_close(stats.class_means('a.0.se')[:2], torch.tensor([[0.2, 0.5], [0.8, 0.5]]).double())
    assert stats.class_means('a.0.se')[2].isnan().all()
    torch.testing.assert_close(stats.mean('a.0.se'), torch.tensor([0.5, 0.5]).double())
    a, b = stats.summaries()
    assert (a['block'], a['stage'], a['images'], a['channels']) == ('a.0', 'a', 4, 2)
    assert a['class_specificity'] == pytest.approx(1.0)  # all variance is between the classes
    assert a['class_spread'] == pytest.approx(0.15)  # channel 0: std of (0.2, 0.8); channel 1: 0
    assert a['saturation'] == pytest.approx((0.6 + 0.0) / 2)
    assert (a['frac_below_0.1'], a['frac_above_0.9'], a['mean_gate']) == (0.0, 0.0, pytest.approx(0.5))
    assert b['class_specificity'] == 0.0 and b['class_spread'] == pytest.approx(0.0)
    assert (b['saturation'], b['frac_above_0.9']) == (pytest.approx(0.9), 1.0)


def test_statistics_accumulate_over_batches() -> None:
    torch.manual_seed(0)
    gates, labels = torch.rand(20, 5), torch.randint(0, 4, (20,))
    once, twice = ExcitationStats(4), ExcitationStats(4)
    once.update({'s': gates}, labels)
    twice.update({'s': gates[:7]}, labels[:7])
    twice.update({'s': gates[7:]}, labels[7:])
    assert once.summary('s') == pytest.approx(twice.summary('s'))
    expected = torch.stack([gates[labels == k].mean(0) for k in range(4)]).double()
    torch.testing.assert_close(twice.class_means('s'), expected)


def test_statistics_reject_bad_labels() -> None:
    with pytest.raises(ValueError, match=r'labels must be in \[0, 2\)'):
        ExcitationStats(2).update({'s': torch.rand(2, 3)}, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match='num_classes'):
        ExcitationStats(0)


def test_identity_gates_equal_removing_se() -> None:
    model = tiny_timm()
    x = torch.randn(2, 3, 32, 32)
    stripped = copy.deepcopy(model)
    for block in (*stripped.layer3, *stripped.layer4):
        block.se = None
    with torch.no_grad():
        full = model(x)
        with identity_gates(model, [n for n in se_layers(model) if stage_of(n) in ('layer3', 'layer4')]):
            off = model(x)
        torch.testing.assert_close(off, stripped(x))
        assert not torch.allclose(off, full)
        torch.testing.assert_close(model(x), full)  # restored
    with pytest.raises(ValueError, match="no SELayer named \\['layer9.0.se'\\]"):
        with identity_gates(model, ['layer9.0.se']):
            pass


def test_no_se_layers_is_an_error() -> None:
    with pytest.raises(ValueError, match='has no SELayer'):
        ExcitationRecorder(nn.Conv2d(3, 3, 1))


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of four 32x32 PNGs: dark and bright noise."""
    root = tmp_path_factory.mktemp('folder')
    generator = torch.Generator().manual_seed(0)
    for k, name in enumerate(['dark', 'light']):
        (root / name).mkdir()
        for i in range(4):
            pixels = (torch.rand(32, 32, 3, generator=generator) * 128 + 127 * k).byte().numpy()
            Image.fromarray(pixels).save(root / name / f'{i}.png')
    return root


@pytest.fixture(scope='module')
def timm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SE-ResNet-18 as tools/train_timm.py saves it (with its training args)."""
    path = tmp_path_factory.mktemp('ckpt') / 'model_best.pth.tar'
    args = argparse.Namespace(num_classes=2, img_size=32, crop_pct=1.0,
                              model_kwargs=TINY)
    torch.save({'state_dict': tiny_timm(2).state_dict(), 'args': args}, path)
    return path


def test_excitation_tool_writes_plots_and_statistics(image_folder: Path, timm_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    result = load_tool('excitation').main(['se_resnet18_plugin', str(timm_checkpoint), '--data', str(image_folder),
                                           '--out-dir', str(tmp_path), '--max-images', '6', '--batch-size', '4'])
    blocks = [f'layer{s}.{b}' for s in range(1, 5) for b in range(2)]
    expected = {f'excitation_{b}.png' for b in blocks} | {'summary.png', 'overview.png', 'stats.csv', 'stats.json'}
    assert {p.name for p in tmp_path.iterdir()} == expected  # and no temporary files left
    saved = json.loads((tmp_path / 'stats.json').read_text())
    assert saved['images'] == 6 and saved['images_per_class'] == [3, 3] and saved['classes'] == ['dark', 'light']
    assert [row['block'] for row in saved['blocks']] == blocks == [row['block'] for row in result['blocks']]
    assert all(0 <= row['class_specificity'] <= 1 and 0 < row['mean_gate'] < 1 for row in saved['blocks'])
    assert (tmp_path / 'stats.csv').read_text().splitlines()[0].startswith('block,module,stage,channels')
    assert all((tmp_path / name).read_bytes()[:4] == b'\x89PNG' for name in expected if name.endswith('.png'))


def test_excitation_tool_rejects_unknown_classes(image_folder: Path, timm_checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        load_tool('excitation').main(['se_resnet18_plugin', str(timm_checkpoint), '--data', str(image_folder),
                                      '--out-dir', str(tmp_path), '--classes', 'dark', 'blue'])
    assert "no class named ['blue']" in capsys.readouterr().err


def test_ablate_tool(image_folder: Path, timm_checkpoint: Path, tmp_path: Path) -> None:
    ablate = load_tool('ablate')
    assert doctest.testmod(ablate).failed == 0
    rows = ablate.main(['se_resnet18_plugin', str(timm_checkpoint), '--data', str(image_folder),
                        '--stages', 'layer3', 'layer4', '--out', str(tmp_path / 'ablation.csv')])
    assert [r['se_off'] for r in rows] == ['none', 'layer3', 'layer4', 'all']
    assert [r['se_layers'] for r in rows] == [0, 2, 2, 8]
    assert rows[0]['top1_change'] == 0.0 and rows[0]['images'] == 8
    assert all(r['top1_change'] == pytest.approx(r['top1'] - rows[0]['top1']) for r in rows)
    assert rows[-1]['loss_change'] == pytest.approx(rows[-1]['loss'] - rows[0]['loss']) != 0  # SE mattered
    assert rows[2]['se_params'] == 2 * (64 * 8 + 8 + 8 * 64 + 64)  # layer4: two SE layers of 64 -> 8 -> 64
    assert (tmp_path / 'ablation.csv').read_text().startswith('se_off,se_layers,se_params')


def test_excitation_tool_on_an_mmpretrain_config(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip('mmpretrain')
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    config = tmp_path / 'tiny_se-resnet18_cifar.py'
    config.write_text(TINY_MM_CONFIG.format(pipeline=PACK))
    cfg = Config.fromfile(config)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, tmp_path / 'epoch_1.pth')
    result = load_tool('excitation').main([str(config), str(tmp_path / 'epoch_1.pth'), '--data', str(image_folder),
                                           '--out-dir', str(tmp_path / 'out')])
    assert [row['module'] for row in result['blocks']][-1] == 'backbone.layer4.1.se_layer'
    assert result['images'] == 8 and (tmp_path / 'out' / 'excitation_layer4.1.png').is_file()
    model.eval()
    bgr = [np.asarray(Image.open(p))[..., ::-1].transpose(2, 0, 1) for p in sorted(image_folder.glob('*/*.png'))]
    with torch.no_grad():  # the tool reads images as MMPretrain's LoadImageFromFile does (BGR)
        x = model.data_preprocessor({'inputs': torch.from_numpy(np.stack(bgr).copy())}, False)['inputs']
        predicted = model(x, mode='tensor').argmax(1)
    assert result['top1'] == pytest.approx(100.0 * (predicted == torch.tensor([0] * 4 + [1] * 4)).float().mean())
