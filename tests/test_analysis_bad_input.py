"""The analysis tools on bad input: one line on stderr naming the input, exit status 2, no file left.

Each case runs the tool's ``main`` in this process through :func:`se_plugins.cli.run`, as its
``__main__`` block does, on tiny models and a few 32x32 PNGs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Set

import pytest
import torch

from scripts import PACK, TINY_MM_CONFIG, load_script
from se_plugins.cli import DEBUG_ENV, InputError, run

timm = pytest.importorskip('timm')
pytest.importorskip('mmpretrain')
pytest.importorskip('matplotlib')
pytest.importorskip('fvcore')
pytestmark = pytest.mark.usefixtures('one_thread')

TOOLS = ('excitation', 'ablate', 'complexity', 'benchmark')
TINY = dict(channels=(8, 16, 32, 64), zero_init_last=False)


def png(path: Path, value: int, size: int = 32) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (size, size), (value, value, value)).save(path)


@pytest.fixture(scope='module')
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny checkpoints, configs and data folders, good and bad, made once."""
    root = tmp_path_factory.mktemp('analysis_inputs')
    data = root / 'data'
    for k, name in enumerate('ab'):
        for i in range(2):
            png(data / 'good' / name / f'{i}.png', 40 + 160 * k + i)
            png(data / 'split' / 'train' / name / f'{i}.png', 99)
            png(data / 'split' / 'val' / name / f'{i}.png', 99)
            png(data / 'nested' / name / 'sub' / f'{i}.png', 99)
            png(data / 'mixed' / name / f'{i}.png', 99, size=32 + 8 * i)
    for name in 'abc':
        png(data / 'three' / name / '0.png', 99)
    png(data / 'truncated' / 'a' / '0.png', 99)
    png(data / 'truncated' / 'b' / '0.png', 99)
    whole = torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    from PIL import Image
    Image.fromarray(whole.numpy()).save(data / 'truncated' / 'b' / '1.png')
    damaged = (data / 'truncated' / 'b' / '1.png').read_bytes()
    (data / 'truncated' / 'b' / '1.png').write_bytes(damaged[:len(damaged) // 2])  # a good header, half the data

    ckpt = root / 'ckpt'
    ckpt.mkdir()
    weights = timm.create_model('se_resnet18_plugin', num_classes=2, **TINY).state_dict()

    def save(name: str, args=None, state_dict=weights) -> None:
        torch.save({'state_dict': state_dict, **({} if args is None else {'args': args})}, ckpt / name)

    save('timm.pth', argparse.Namespace(num_classes=2, img_size=32, model_kwargs=TINY))
    save('no_classes.pth', argparse.Namespace(img_size=32, model_kwargs=TINY))  # num_classes from fc.weight
    save('args_list.pth', [1, 2])
    save('args_big.pth', {'num_classes': 2, 'img_size': 'big', 'model_kwargs': TINY})
    save('args_negative.pth', argparse.Namespace(num_classes=2, img_size=-5, model_kwargs=TINY))
    save('args_ten.pth', argparse.Namespace(num_classes='ten', model_kwargs=TINY))
    save('meta.pth', argparse.Namespace(num_classes=2, img_size=32, model_kwargs=TINY),
         {**weights, 'fc.bias': torch.empty(2, device='meta')})
    seresnet = timm.create_model('seresnet18', num_classes=2, channels=TINY['channels'])
    save('seresnet.pth', argparse.Namespace(num_classes=2, img_size=32, model_kwargs=dict(channels=TINY['channels'])),
         seresnet.state_dict())

    cfg = root / 'cfg'
    cfg.mkdir()
    (cfg / 'tiny.py').write_text(TINY_MM_CONFIG.format(pipeline=PACK))
    (cfg / 'nopack.py').write_text(TINY_MM_CONFIG.format(pipeline="[dict(type='LoadImageFromFile')]"))
    (cfg / 'badresize.py').write_text(TINY_MM_CONFIG.format(
        pipeline="[dict(type='LoadImageFromFile'), dict(type='Resize', scale=-3), dict(type='PackInputs')]"))
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    mm = Config.fromfile(cfg / 'tiny.py')
    model = MODELS.build(dict(mm.model, data_preprocessor=mm.data_preprocessor))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt / 'mm.pth')
    return root


@pytest.fixture(scope='module')
def tools() -> Dict[str, ModuleType]:
    return {name: load_script(f'tools/analysis/{name}.py') for name in TOOLS}


def files(folder: Path) -> Set[str]:
    return {str(p) for p in folder.rglob('*')}


def excite(ckpt: str = 'timm.pth', data: str = 'good', *extra: str, model: str = 'se_resnet18_plugin') -> List[str]:
    return [model, f'{{root}}/ckpt/{ckpt}', '--data', f'{{root}}/data/{data}', '--out-dir', '{out}/plots', *extra]


def ablate(ckpt: str = 'timm.pth', data: str = 'good', *extra: str, model: str = 'se_resnet18_plugin') -> List[str]:
    return [model, f'{{root}}/ckpt/{ckpt}', '--data', f'{{root}}/data/{data}', *extra]


MM = '{root}/cfg/tiny.py'
# (tool, argv, words the one line holds)
CASES = [
    ('excitation', excite(data='truncated'), ['--data', '1.png', 'damaged', 'does not decode']),
    ('excitation', excite('mm.pth', 'truncated', model=MM), ['--data', '1.png', 'damaged']),
    ('excitation', excite('mm.pth', 'mixed', model=MM), ['--data', 'different sizes', 'Resize', 'test_pipeline']),
    ('ablate', ablate('mm.pth', 'mixed', model=MM), ['--data', 'different sizes', 'CenterCrop']),
    ('excitation', excite('mm.pth', model='{root}/cfg/nopack.py'),
     ['nopack.py', 'test_dataloader.dataset.pipeline', "no 'inputs'", 'PackInputs']),
    ('excitation', excite('mm.pth', model='{root}/cfg/badresize.py'),
     ['badresize.py', 'test_dataloader.dataset.pipeline', 'fails on', 'cv2.error', 'fix the config']),
    ('excitation', excite('args_list.pth'), ['CHECKPOINT', 'args_list.pth', 'training args are a list']),
    ('excitation', excite('args_big.pth'), ['CHECKPOINT', "img_size='big'", '--img-size N']),
    ('excitation', excite('args_negative.pth'), ['CHECKPOINT', 'img_size=-5', '--img-size N']),
    ('ablate', ablate('args_ten.pth'), ['CHECKPOINT', "num_classes='ten'", '--num-classes N']),
    ('excitation', excite('meta.pth'), ['CHECKPOINT', 'meta.pth', 'fc.bias', 'meta']),
    ('excitation', excite('no_classes.pth', 'three'), ['--data', "['a', 'b', 'c']", 'predicts 2 classes']),
    ('ablate', ablate('timm.pth', 'three'), ['--data', '3 class folders', 'predicts 2']),
    ('excitation', excite(data='split'), ['--data', 'split root', 'train/, val/', 'split/val']),
    ('excitation', excite('mm.pth', 'split', model=MM), ['--data', 'split root', 'split/val']),
    ('excitation', excite(data='nested'), ['--data', 'sub', 'below its class']),
    ('excitation', excite('seresnet.pth', model='seresnet18'),
     ["MODEL 'seresnet18'", "timm's SEModule", 'se_resnet18_plugin', 'convert_checkpoint.py']),
    ('excitation', excite('mm.pth', 'good', '--img-size', '7', model=MM), ['--img-size 7', 'is for timm models']),
    ('ablate', ablate('mm.pth', 'good', '--num-classes', '3', model=MM), ['--num-classes 3', 'model.head.num_classes']),
    ('excitation', excite('timm.pth', 'good', '--crop-pct', 'inf'), ['--crop-pct', "'inf'"]),
    ('ablate', ablate('timm.pth', 'good', '--out', '{out}/table/'), ['--out', 'ends with a slash']),
    ('complexity', ['vit_tiny_patch16_224', '--input-size', '32', '--num-classes', '2'],
     ['--input-size 32', 'vit_tiny_patch16_224', 'AssertionError', 'made for (224)']),
    ('complexity', ['resnet18', '--input-size', '200000'], ['--input-size 200000', 'memory', 'GiB', 'smaller size']),
    ('complexity', ['resnet18_8xb16_cifar10', '--backbone-cfg', "{'depht': 18}"],
     ["--backbone-cfg {'depht': 18}", 'depht', 'fix --backbone-cfg or --se-cfg']),
    ('complexity', ['{root}/cfg/tiny.py', '--se-cfg', "{'ratoi': 8}"],
     ['tiny.py', 'ratoi', 'fix the config, --backbone-cfg or --se-cfg']),
    ('benchmark', ['--models', 'vit_tiny_patch16_224', '--batch-size', '1', '--img-size', '32'],
     ['--img-size 32', 'vit_tiny_patch16_224', 'made for (224)']),
    ('benchmark', ['--models', 'resnet18', '--batch-size', '1', '--img-size', '200000'],
     ['--img-size 200000', 'memory', 'GiB']),
    ('benchmark', ['--models', 'mm:CSPResNet-50'], ["'mm:CSPResNet-50'", 'ResNet family', 'SEResNet']),
    ('benchmark', ['--models', 'mm:ImageClassifier-50'], ["'mm:ImageClassifier-50'", 'ResNet family']),
    ('benchmark', ['--models', 'mm:Res2Net-50+se'], ["'mm:Res2Net-50+se'", 'takes no se_cfg']),
]


def as_argv(argv: List[str], root: Path, out: Path) -> List[str]:
    return [a.replace('{root}', str(root)).replace('{out}', str(out)) for a in argv]


def one_line(tools: Dict[str, ModuleType], tool: str, argv: List[str], capsys: pytest.CaptureFixture) -> str:
    """Run the tool; assert exit status 2 and one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as info:
        run(tools[tool].main, f'{tool}.py', argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert err.startswith(f'{tool}.py: '), err
    return err.rstrip('\n')


@pytest.mark.parametrize('tool, argv, words', CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_and_leaves_nothing(tool, argv, words, root, tools, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    monkeypatch.chdir(out)
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    before = files(root)
    line = one_line(tools, tool, as_argv(argv, root, out), capsys)
    assert all(word in line for word in words), line
    assert files(root) == before and list(out.iterdir()) == []


def test_an_image_too_large_for_pil_is_named(root, tools, tmp_path, monkeypatch, capsys):
    from PIL import Image
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)  # 32x32 = 1024 pixels: a decompression bomb
    line = one_line(tools, 'excitation', as_argv(excite(), root, tmp_path), capsys)
    assert '--data' in line and '0.png: too large (1024 pixels' in line and 'resize or remove it' in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_of_an_output_file_is_named_before_the_work(root, tools, tmp_path, capsys):
    (tmp_path / 'plots' / 'summary.png').mkdir(parents=True)
    line = one_line(tools, 'excitation', as_argv(excite(), root, tmp_path), capsys)
    assert '--out-dir' in line and 'summary.png is a folder' in line, line
    assert files(tmp_path) == {str(tmp_path / 'plots'), str(tmp_path / 'plots' / 'summary.png')}


def test_a_late_write_failure_leaves_no_file_and_names_the_flag(root, tools, tmp_path, monkeypatch, capsys):
    def fail(path, obj):
        raise PermissionError(13, 'Permission denied', str(path))

    monkeypatch.setattr(tools['excitation'], 'write_json', fail)
    line = one_line(tools, 'excitation', as_argv(excite(), root, tmp_path), capsys)
    assert line.startswith('excitation.py: --out-dir: ') and 'stats.json: Permission denied' in line, line
    assert list(tmp_path.iterdir()) == []  # the plots written before are gone, and their folder


def test_ablate_names_out_for_a_late_write_failure(root, tools, tmp_path, monkeypatch, capsys):
    def fail(path, rows):
        raise PermissionError(13, 'Permission denied', str(path))

    monkeypatch.setattr(tools['ablate'], 'write_csv', fail)
    line = one_line(tools, 'ablate', as_argv(ablate('timm.pth', 'good', '--out', '{out}/t.csv'), root, tmp_path),
                    capsys)
    assert line.startswith('ablate.py: --out: ') and 'Permission denied' in line, line


def test_a_plain_state_dict_sizes_the_classifier_from_its_weights(root, tools, tmp_path, capsys):
    """No num_classes in the training args: fc.weight says 2, the data has 2 classes; one summary line."""
    result = tools['excitation'].main(as_argv(excite('no_classes.pth'), root, tmp_path))
    assert result['classes'] == ['a', 'b'] and result['images'] == 4
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith('4 images, top-1'), err  # no progress bar off a terminal


def test_debug_shows_the_traceback(root, tools, tmp_path, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(InputError, match='split root'):
        run(tools['excitation'].main, 'excitation.py', as_argv(excite(data='split'), root, tmp_path) + ['--debug'])
    assert list(tmp_path.iterdir()) == []


def test_json_is_strict(tmp_path):
    from se_plugins.analysis.report import write_json
    path = write_json(tmp_path / 'stats.json', {'loss': float('nan'), 'gates': (0.5, float('-inf')), 'n': 3})
    assert 'NaN' not in path.read_text() and 'Infinity' not in path.read_text()
    assert json.loads(path.read_text()) == {'loss': None, 'gates': [0.5, None], 'n': 3}


def test_a_tensor_load_state_dict_cannot_copy_is_named():
    """What fit_to_model lets through and load_state_dict refuses is still one line naming the tensor."""
    from torch import nn

    from se_plugins.analysis.loading import _copy_failure
    with pytest.raises(RuntimeError) as info:
        nn.Linear(2, 2).load_state_dict({'weight': torch.empty(2, 2, device='meta'), 'bias': torch.zeros(2)})
    expected = 'weight cannot be loaded into the model (Cannot copy out of meta tensor; no data!)'
    assert _copy_failure(info.value) == expected


def test_doctests_of_the_analysis_modules():
    import doctest

    from se_plugins.analysis import excitation, forward, report
    for module in (excitation, forward, report, load_script('tools/analysis/excitation.py')):
        assert doctest.testmod(module).failed == 0, module.__name__
