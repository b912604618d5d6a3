"""Every tool on bad input: one line on stderr naming the input and the mistake, exit status 2, no file left.

Each case runs the tool's ``main`` in this process through :func:`se_plugins.cli.run`, as its ``__main__``
block does (a subprocess costs seconds of imports); one command line per tool proves the real thing.
"""
from __future__ import annotations

import fractions
import io
import itertools
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Set

import pytest
import torch

from scripts import ROOT, load_script
from se_plugins.cli import DEBUG_ENV, InputError, run
from se_plugins.convert import CheckpointError

timm = pytest.importorskip('timm')
pytest.importorskip('mmpretrain')
pytest.importorskip('matplotlib')
pytest.importorskip('fvcore')
pytestmark = pytest.mark.usefixtures('one_thread')

TOOLS = {'convert_checkpoint.py': 'tools/convert_checkpoint.py', 'prepare_digits.py': 'tools/prepare_digits.py',
         'train.py': 'tools/train.py', 'test.py': 'tools/test.py', 'train_timm.py': 'tools/train_timm.py',
         'benchmark.py': 'tools/analysis/benchmark.py', 'complexity.py': 'tools/analysis/complexity.py',
         'excitation.py': 'tools/analysis/excitation.py', 'ablate.py': 'tools/analysis/ablate.py'}
TINY = dict(channels=(8, 16, 32, 64), zero_init_last=False)
DEMO_CONFIG = ROOT / 'configs' / 'demo' / 'se-resnet18_1xb32_digits.py'
TINY_CONFIG = '''
_base_ = [{demo!r}]
data_root = {data!r}
model = dict(backbone=dict(stem_channels=8, base_channels=8), head=dict(num_classes=2, in_channels=64))
data_preprocessor = dict(num_classes=2)
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)
'''


def png(path: Path, value: int) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (32, 32), (value, value, value)).save(path)


@pytest.fixture(scope='module')
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good and bad inputs of every kind, made once: checkpoints, configs, data folders, a regular file."""
    root = tmp_path_factory.mktemp('inputs')
    (root / 'afile').write_text('a regular file, where a folder would be\n')
    (root / 'adir').mkdir()
    ckpt = root / 'ckpt'
    ckpt.mkdir()
    model = timm.create_model('se_resnet18_plugin', num_classes=2, **TINY)
    import argparse
    torch.save({'state_dict': model.state_dict(), 'args': argparse.Namespace(num_classes=2, img_size=32,
                                                                             model_kwargs=TINY)}, ckpt / 'timm.pth')
    whole = io.BytesIO()
    torch.save(model.state_dict(), whole)
    (ckpt / 'trunc.pth').write_bytes(whole.getvalue()[:len(whole.getvalue()) // 2])
    (ckpt / 'empty.pth').write_bytes(b'')
    (ckpt / 'junk.pth').write_bytes(b'hello, I am not a checkpoint\n' * 20)
    (ckpt / 'pickle.pth').write_bytes(pickle.dumps({'weights': [1.0, 2.0]}))
    # a Python object no safe load allows (numpy arrays are allowed once a process has called
    # se_plugins.engine.allow_mmengine_checkpoints(), as resuming an mmengine run does)
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'best': fractions.Fraction(1, 3)}, ckpt / 'objects.pth')
    torch.save(torch.zeros(3), ckpt / 'tensor.pth')
    torch.save(torch.nn.Linear(4, 2).state_dict(), ckpt / 'other.pth')  # another architecture
    torch.save(timm.create_model('legacy_seresnet18').state_dict(), ckpt / 'legacy.pth')
    (ckpt / 'junk.safetensors').write_bytes(b'not safetensors' * 10)
    (ckpt / 'folder.pth').mkdir()

    data = root / 'data'
    for split in ('train', 'val'):
        for k, name in enumerate('ab'):
            for i in range(4):
                png(data / 'good' / split / name / f'{i}.png', 40 + 160 * k + i)
            (data / 'nonimg' / split / name).mkdir(parents=True)
            (data / 'nonimg' / split / name / 'notes.txt').write_text('no image\n')
            (data / 'junkimg' / split / name).mkdir(parents=True)
            (data / 'junkimg' / split / name / '0.png').write_bytes(b'not a png\n')
        for name in 'abc':
            png(data / 'three' / split / name / '0.png', 99)
        png(data / 'noclass' / split / '0.png', 99)
        (data / 'emptysplits' / split).mkdir(parents=True)
    (data / 'empty').mkdir()

    cfg = root / 'cfg'
    cfg.mkdir()
    tiny = cfg / 'tiny.py'
    tiny.write_text(TINY_CONFIG.format(demo=str(DEMO_CONFIG), data=str(data / 'good')))
    (cfg / 'unknown_type.py').write_text(f"_base_ = [{str(tiny)!r}]\nmodel = dict(backbone=dict(type='NoSuchNet'))\n")
    (cfg / 'syntax.py').write_text('model = dict(type="ImageClassifier"\n')
    (cfg / 'empty.py').write_text('')
    (cfg / 'base_missing.py').write_text("_base_ = ['no_such_base.py']\n")
    (cfg / 'notes.txt').write_text('model = 1\n')
    (cfg / 'bad.yaml').write_text('model: se_resnet18_plugin\nepochs: [1, 2\n')
    (cfg / 'list.yaml').write_text('- model\n- epochs\n')
    (cfg / 'wrongtype.yaml').write_text('model: se_resnet18_plugin\nepochs: [1, 2]\n')

    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    mm = Config.fromfile(tiny)
    mm_model = MODELS.build(dict(mm.model, data_preprocessor=mm.data_preprocessor))
    torch.save({'state_dict': mm_model.state_dict(), 'meta': {}}, ckpt / 'mm.pth')
    broken = {k: v.clone() for k, v in mm_model.state_dict().items()}
    broken['backbone.conv1.weight'][0] = float('nan')
    torch.save({'state_dict': broken}, ckpt / 'mm_nan.pth')
    torch.save({'state_dict': {k: v.long() for k, v in mm_model.state_dict().items()}}, ckpt / 'mm_int.pth')
    wide = MODELS.build(dict(mm.model, backbone=dict(mm.model.backbone, stem_channels=16, base_channels=16)))
    torch.save({'state_dict': wide.state_dict()}, ckpt / 'mm_wide.pth')
    torch.save({1: torch.zeros(2), 2: torch.zeros(3)}, ckpt / 'intkeys.pth')
    (ckpt / 'dangling.pth').symlink_to(ckpt / 'nowhere.pth')
    os.mkfifo(ckpt / 'fifo.pth')
    (root / 'layout' / 'imagefolder').parent.mkdir()
    (root / 'layout' / 'imagefolder').write_text('a file where a layout goes\n')
    (root / 'nowhere').symlink_to(root / 'no_such_folder')
    (cfg / 'sysexit.py').write_text('import sys\nsys.exit(3)\n')
    (root / 'own').mkdir()
    (root / 'own' / 'own.py').write_text(f'_base_ = [{str(tiny)!r}]\n')
    shutil.copy(ckpt / 'mm.pth', ckpt / 'mm.pkl')
    for split, names in (('train', 'ab'), ('val', 'b')):
        for name in names:
            png(data / 'valmiss' / split / name / '0.png', 99)
    return root


@pytest.fixture(scope='module')
def tools() -> Dict[str, ModuleType]:
    return {tool: load_script(path) for tool, path in TOOLS.items()}


def files(folder: Path) -> Set[str]:
    """Every file and folder under ``folder`` (hidden ones too)."""
    return {str(p) for p in folder.rglob('*')}


T = '{root}/cfg/tiny.py'
MM = '{root}/ckpt/mm.pth'
GOOD = '{root}/data/good/train'
TIMM = ['--model', 'se_resnet18_plugin', '--num-classes', '2', '--img-size', '32', '--epochs', '1', '-b', '4',
        '-j', '0', '--model-kwargs', 'channels=(8,16,32,64)', '--output', '{out}/timm']


def data_opts(folder: str, field: str = 'train') -> List[str]:
    return ['--cfg-options', f'{field}_dataloader.dataset.data_root={{root}}/data/{folder}']


def excite(ckpt: str = 'timm.pth', data: str = GOOD, *extra: str, model: str = 'se_resnet18_plugin') -> List[str]:
    return [model, f'{{root}}/ckpt/{ckpt}', '--data', data, '--out-dir', '{out}/plots', *extra]


def ablate(ckpt: str = 'timm.pth', data: str = GOOD, *extra: str) -> List[str]:
    return ['se_resnet18_plugin', f'{{root}}/ckpt/{ckpt}', '--data', data, *extra]


def convert(src: str, *extra: str, dst: str = '{out}/out.pth', to: str = 'timm') -> List[str]:
    return [f'{{root}}/ckpt/{src}', dst, '--to', to, *extra]


# (tool, argv, words the one line holds: the input and the mistake)
CASES = [
    ('convert_checkpoint.py', convert('missing.pth'), ['missing.pth', 'not found']),
    ('convert_checkpoint.py', convert('empty.pth'), ['empty.pth', 'not a readable PyTorch checkpoint']),
    ('convert_checkpoint.py', convert('trunc.pth'), ['trunc.pth', 'truncated or corrupted']),
    ('convert_checkpoint.py', convert('junk.pth'), ['junk.pth', 'not a readable PyTorch checkpoint']),
    ('convert_checkpoint.py', convert('pickle.pth'), ['pickle.pth', 'not a readable PyTorch checkpoint']),
    ('convert_checkpoint.py', convert('objects.pth'), ['objects.pth', 'Python objects', 'fractions.Fraction']),
    ('convert_checkpoint.py', convert('tensor.pth'), ['tensor.pth', 'holds a Tensor, not a state dict']),
    ('convert_checkpoint.py', convert('junk.safetensors'), ['junk.safetensors', 'not a readable safetensors']),
    ('convert_checkpoint.py', convert('folder.pth'), ['folder.pth', 'is a folder']),
    ('convert_checkpoint.py', convert('other.pth'), ['other.pth', 'not a ResNet, RegNet or ByobNet']),
    ('convert_checkpoint.py', convert('legacy.pth', to='mmpretrain'), ['legacy.pth', 'legacy Caffe-ported']),
    ('convert_checkpoint.py', convert('timm.pth', dst='{root}/afile/out.pth'), ['DST', 'afile', 'is a file']),
    ('convert_checkpoint.py', convert('timm.pth', dst='{root}/adir'), ['DST', 'adir', 'is a folder']),
    ('convert_checkpoint.py', convert('timm.pth', to='tim'), ['--to', "invalid choice: 'tim'", 'mmpretrain']),
    ('convert_checkpoint.py', ['{root}/ckpt/timm.pth', '{out}/o.pth'], ['--to', 'required']),
    ('convert_checkpoint.py', convert('timm.pth', '--model', 'seresnetaa50d', to='mmpretrain'),
     ['--model seresnetaa50d', 'no MMPretrain counterpart']),
    ('convert_checkpoint.py', convert('timm.pth', '--model', 'seresnet19'), ['--model', 'seresnet19', 'unknown']),
    ('convert_checkpoint.py', convert('timm.pth', dst='{root}/ckpt/timm.pth'), ['DST', 'is SRC']),
    ('convert_checkpoint.py', convert('timm.pth', dst='{out}/new/'), ['DST', 'ends with a slash']),
    ('convert_checkpoint.py', convert('timm.pth', dst='{root}/nowhere/out.pth'), ['DST', 'nowhere', 'dangling']),
    ('convert_checkpoint.py', convert('timm.pth', dst='/proc/out.pth'), ['DST', '/proc', 'takes no new files']),
    ('convert_checkpoint.py', convert('intkeys.pth'), ['intkeys.pth', 'holds no tensors']),
    ('convert_checkpoint.py', convert('dangling.pth'), ['dangling.pth', 'symbolic link to nothing']),
    ('convert_checkpoint.py', convert('fifo.pth'), ['fifo.pth', 'not a regular file']),

    ('prepare_digits.py', ['--out', '{root}/afile/digits'], ['--out', 'afile', 'is a file, not a folder']),
    ('prepare_digits.py', ['--out', '{root}/afile'], ['--out', 'afile', 'is a file, not a folder']),
    ('prepare_digits.py', ['--val-fraction', '1.5'], ['--val-fraction', '1.5']),
    ('prepare_digits.py', ['--seed', '-1'], ['--seed', "'-1'"]),
    ('prepare_digits.py', ['--out', '{out}/d', '--val-fraction', '0.001'], ['--val-fraction 0.001', '0.0056']),
    ('prepare_digits.py', ['--out', '{root}/layout'], ['--out', 'imagefolder', 'not a complete layout']),
    ('prepare_digits.py', ['--out', '{root}/nowhere'], ['--out', 'nowhere', 'dangling']),
    ('prepare_digits.py', ['--out', '{out}/d', '--seed', str(2**40)], ['--seed', '4294967295']),

    ('train.py', ['{root}/cfg/missing.py'], ['missing.py', 'config not found']),
    ('train.py', ['{root}/cfg/empty.py'], ['empty.py', 'defines no model']),
    ('train.py', ['{root}/cfg/syntax.py'], ['syntax.py', 'SyntaxError', 'never closed']),
    ('train.py', ['{root}/cfg/notes.txt'], ['notes.txt', 'not a config file']),
    ('train.py', ['{root}/cfg'], ['cfg', 'is a folder']),
    ('train.py', ['{root}/cfg/base_missing.py'], ['base_missing.py', 'no_such_base.py']),
    ('train.py', ['{root}/cfg/unknown_type.py'], ['unknown_type', 'NoSuchNet is not in the']),
    ('train.py', [T, '--cfg-options', 'max_epochs'], ['--cfg-options', 'KEY=VALUE', 'max_epochs']),
    ('train.py', [T, '--cfg-options', 'trian_cfg.max_epochs=1'], ['trian_cfg', "did you mean 'train_cfg'"]),
    ('train.py', [T, '--cfg-options', 'model.backbone.depht=18'], ['tiny', 'depht']),
    ('train.py', [T, '--cfg-options', 'optim_wrapper.optimizer.lr=fast'], ['tiny', "'str'"]),
    ('train.py', [T, '--work-dir', '{root}/afile/work'], ['--work-dir', 'afile', 'is a file']),
    ('train.py', [T, '--resume', '{root}/ckpt/junk.pth'], ['--resume', 'junk.pth', 'not a readable']),
    ('train.py', [T, '--resume', '{root}/ckpt/missing.pth'], ['--resume', 'missing.pth', 'not found']),
    ('train.py', [T, '--resume', '{root}/ckpt/other.pth'], ['--resume', 'other.pth', 'not a training checkpoint']),
    ('train.py', [T, '--cfg-options', 'load_from={root}/ckpt/trunc.pth'], ['load_from', 'trunc.pth', 'truncated']),
    ('train.py', [T, *data_opts('missing')], ['train_dataloader.dataset.data_root', 'is not a folder']),
    ('train.py', [T, *data_opts('empty')], ['data_prefix', 'no folder', 'empty']),
    ('train.py', [T, *data_opts('noclass')], ['noclass', 'Found 0 files']),
    ('train.py', [T, *data_opts('nonimg')], ['nonimg', 'Found 0 files']),
    ('train.py', [T, *data_opts('junkimg')], ['0.png', 'not an image']),
    ('train.py', [T, *data_opts('three')], ['num_classes=2', '3 classes']),
    ('train.py', [T, '--launcher', 'slurmm'], ['--launcher', "invalid choice: 'slurmm'"]),
    ('train.py', [T, '--launcher', 'slurm'], ['--launcher slurm', 'SLURM_PROCID', 'srun']),
    ('train.py', [T, '--work-dir', ''], ['--work-dir', 'empty']),
    ('train.py', [T, '--cfg-options', 'train_dataloader=5'], ['train_dataloader=5', 'not a dict']),
    ('train.py', [T, '--cfg-options', 'randomness=5'], ['randomness=5', 'not a dict']),
    ('train.py', [T, '--cfg-options', 'train_dataloader.num_workers=two'], ['num_workers', "'two'", '>= 0']),
    ('train.py', [T, '--cfg-options', 'work_dir=5'], ['work_dir=5', 'not a path']),
    ('train.py', [T, '--cfg-options', 'load_from=5'], ['load_from=5', 'not a path']),
    ('train.py', [T, '--cfg-options', 'train_cfg.max_epochs=-1'], ['train_cfg.max_epochs=-1', '>= 1']),
    ('train.py', [T, '--cfg-options', 'train_cfg.max_epochs.x=1'], ['--cfg-options', 'max_epochs.x', 'merged']),
    ('train.py', [T, '--cfg-options', 'train_dataloader.dataset.pipeline.9.type=X'], ['pipeline.9', 'Index 9']),
    ('train.py', [T, '--cfg-options', 'load_from={root}/ckpt/mm_wide.pth'], ['load_from', 'mm_wide', 'other shapes']),
    ('train.py', [T, '--cfg-options', 'load_from={root}/ckpt/timm.pth'], ['load_from', 'timm.pth', 'none of its']),
    ('train.py', [T, '--resume', '{root}/ckpt/fifo.pth'], ['--resume', 'fifo.pth', 'not a regular file']),
    ('train.py', [T, '--cfg-options', 'optim_wrapper.optimizer.type=NoSuchOpt'], ['NoSuchOpt', 'no such optimizer']),
    ('train.py', [T, '--cfg-options', 'train_cfg.val_interval=0'], ['train_cfg.val_interval=0', '>= 1']),
    ('train.py', [T, '--cfg-options', 'val_evaluator.topk=(1,50)'], ['val_evaluator', 'topk=(1, 50)', '2 classes']),
    ('train.py', [T, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr.base_batch_size=0'],
     ['auto_scale_lr.base_batch_size']),
    ('train.py', [T, '--cfg-options', 'train_dataloader.dataset.pipeline=[]'], ['fails in its first step', 'inputs']),
    ('train.py', [T, '--cfg-options', 'train_dataloader.dataset.ann_file=no.txt'], ['ann_file', 'no file']),
    ('train.py', [T, '--cfg-options', 'default_hooks.checkpoint.out_dir=/proc/ckpt'],
     ['default_hooks.checkpoint.out_dir', 'takes no new files']),
    ('train.py', [T, '--cfg-options', 'custom_imports.imports=[os]'], ['custom_imports', 'set it in the config']),
    ('train.py', ['{root}/cfg/sysexit.py'], ['sysexit.py', 'SystemExit']),
    ('train.py', ['{root}/own/own.py', '--work-dir', '{root}/own'], ['--work-dir', 'own.py itself']),
    ('train.py', [T, '--cfg-options', 'train_dataloader.dataset.data_root={root}/data/valmiss',
                  'val_dataloader.dataset.data_root={root}/data/valmiss'], ['val_dataloader.dataset', 'differ']),

    ('test.py', [T, '{root}/ckpt/missing.pth'], ['CHECKPOINT', 'missing.pth', 'not found']),
    ('test.py', [T, '{root}/ckpt/trunc.pth'], ['CHECKPOINT', 'trunc.pth', 'truncated']),
    ('test.py', [T, '{root}/ckpt/other.pth'], ['CHECKPOINT', 'other.pth', 'does not fit the model']),
    ('test.py', [T, '{root}/ckpt/timm.pth'], ['CHECKPOINT', 'timm.pth', 'does not fit the model']),
    ('test.py', ['{root}/cfg/syntax.py', MM], ['syntax.py', 'SyntaxError']),
    ('test.py', [T, MM, '--out', '{out}/results.txt'], ['--out', 'results.txt', 'predictions', '.pkl']),
    ('test.py', [T, MM, '--out', '{out}/m.csv', '--out-item', 'metrics'], ['--out', 'm.csv', 'metrics', '.json']),
    ('test.py', [T, MM, '--out', '{root}/afile/results.pkl'], ['--out', 'afile', 'is a file']),
    ('test.py', [T, MM, '--out-item', 'metrics'], ['--out-item needs --out']),
    ('test.py', [T, MM, *data_opts('nonimg', 'test')], ['nonimg', 'Found 0 files']),
    ('test.py', [T, MM, *data_opts('three', 'test')], ['num_classes=2', '3 classes']),
    ('test.py', [T, '{root}/ckpt/mm_nan.pth'], ['CHECKPOINT', 'backbone.conv1.weight', 'NaN']),
    ('test.py', [T, '{root}/ckpt/mm_int.pth'], ['CHECKPOINT', 'torch.int64', 'not floating-point']),
    ('test.py', [T, '{root}/ckpt/dangling.pth'], ['CHECKPOINT', 'dangling.pth', 'symbolic link to nothing']),
    ('test.py', [T, MM, '--cfg-options', 'test_dataloader.batch_size.x=1'], ['--cfg-options', 'batch_size.x']),
    ('test.py', [T, MM, '--launcher', 'pytorch'], ['--launcher pytorch', 'RANK', 'torchrun']),
    ('test.py', [T, MM, '--cfg-options', 'load_from={root}/ckpt/other.pth'], ['--cfg-options load_from', 'CHECKPOINT']),
    ('test.py', [T, '{root}/ckpt/mm.pkl', '--out', '{root}/ckpt/mm.pkl'], ['--out', 'is CHECKPOINT']),
    ('test.py', [T, MM, '--cfg-options', 'test_evaluator.topk=(1,50)'], ['test_evaluator', 'topk=(1, 50)']),

    ('train_timm.py', ['--config', '{root}/cfg/bad.yaml'], ['--config', 'bad.yaml', 'not valid YAML', 'line']),
    ('train_timm.py', ['--config', '{root}/cfg'], ['--config', 'is a folder']),
    ('train_timm.py', ['--config', '{root}/cfg/list.yaml'], ['list.yaml', 'expected a mapping']),
    ('train_timm.py', ['--config', '{root}/cfg/wrongtype.yaml'], ['wrongtype.yaml', 'epochs', '[1, 2]']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/empty'], ['--data-dir', 'empty', 'no train/']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/emptysplits'], ['emptysplits', 'Found 0 images']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/nonimg'], ['nonimg', 'Found 0 images']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/junkimg'], ['--data-dir', '0.png', 'not an image']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/three'], ['--num-classes 2', '3 class folders']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--output', '{root}/afile/out'],
     ['--output', 'afile', 'is a file']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--opt', 'adamm'], ['--opt', 'adamm']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--sched', 'cosinus'], ['--sched', 'cosinus']),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--device', 'gpu'], ['--device', "'gpu'"]),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--epochs', '0'], ['--epochs', "'0'"]),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--lr', 'fast'], ['--lr', "'fast'"]),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '-j', '-1'], ['--workers', "'-1'"]),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--hflip', '2'], ['--hflip', "'2'"]),
    ('train_timm.py', [*TIMM, '--data-dir', '{root}/data/good', '--model', 'se_resnet19_plugin'],
     ['--model', 'se_resnet19_plugin', 'unknown to timm']),

    ('benchmark.py', ['--models', 'resnet50', 'no_such_net'], ['--models', "'no_such_net'", 'unknown to timm']),
    ('benchmark.py', ['--models', 'mm:NoSuchNet-50'], ['--models', "'mm:NoSuchNet-50'"]),
    ('benchmark.py', ['--models', 'mm:ResNet'], ['--models', "'mm:ResNet'", 'mm:TYPE-DEPTH']),
    ('benchmark.py', ['--models', 'mm:ResNet-51'], ['--models', "'mm:ResNet-51'", 'depth']),
    ('benchmark.py', ['--batch-size', '0'], ['--batch-size', "'0'"]),
    ('benchmark.py', ['--repeats', 'many'], ['--repeats', "'many'"]),
    ('benchmark.py', ['--device', 'tpu'], ['--device', "invalid choice: 'tpu'"]),
    ('benchmark.py', ['--models', 'resnet18', '--batch-size', '1', '--img-size', '1'], ['--img-size 1', 'too small']),

    ('complexity.py', ['no_such_net'], ["'no_such_net'", 'neither a timm model']),
    ('complexity.py', ['resnet18', '--se-cfg', "{'ratio': 8"], ['--se-cfg', 'not a Python literal']),
    ('complexity.py', ['resnet18', '--se-cfg', '[8]'], ['--se-cfg', 'expected a dict literal']),
    ('complexity.py', ['se_resnet18_plugin', '--se-cfg', "{'ratoi': 8}"], ['se_resnet18_plugin', 'ratoi']),
    ('complexity.py', ['resnet18', '--se-cfg', "{'ratio': 8}"], ['resnet18', 'se_cfg']),
    ('complexity.py', ['resnet18', '--backbone-cfg', "{'style': 'caffe'}"], ['--backbone-cfg', 'resnet18']),
    ('complexity.py', ['{root}/cfg/syntax.py'], ['syntax.py', 'SyntaxError']),
    ('complexity.py', ['{root}/cfg/missing.py'], ['missing.py', 'config not found']),
    ('complexity.py', ['{root}/cfg/unknown_type.py'], ['unknown_type', 'NoSuchNet']),
    ('complexity.py', ['resnet18', '--input-size', '0'], ['--input-size', "'0'"]),

    ('excitation.py', excite('missing.pth'), ['CHECKPOINT', 'missing.pth', 'not found']),
    ('excitation.py', excite('junk.pth'), ['CHECKPOINT', 'junk.pth', 'not a readable PyTorch checkpoint']),
    ('excitation.py', excite('empty.pth'), ['CHECKPOINT', 'empty.pth', 'not a readable PyTorch checkpoint']),
    ('excitation.py', excite('tensor.pth'), ['CHECKPOINT', 'tensor.pth', 'not a state dict']),
    ('excitation.py', excite('other.pth'), ['CHECKPOINT', 'other.pth', 'does not fit the model']),
    ('excitation.py', excite('timm.pth', '{root}/data/missing'), ['--data', 'missing', 'no such folder']),
    ('excitation.py', excite('timm.pth', '{root}/afile'), ['--data', 'afile', 'is a file']),
    ('excitation.py', excite('timm.pth', '{root}/data/empty'), ['--data', 'empty', 'no class folders']),
    ('excitation.py', excite('timm.pth', '{root}/data/noclass/train'), ['--data', 'noclass', 'no class folders']),
    ('excitation.py', excite('timm.pth', '{root}/data/nonimg/train'), ['--data', 'nonimg', 'Found 0 images']),
    ('excitation.py', excite('timm.pth', '{root}/data/junkimg/train'), ['--data', '0.png', 'not an image']),
    ('excitation.py', excite('timm.pth', '{root}/data/three/train'), ['--data', '3 class folders', 'predicts 2']),
    ('excitation.py', [*excite()[:-1], '{root}/afile/plots'], ['--out-dir', 'afile', 'is a file']),
    ('excitation.py', [*excite()[:-1], '{root}/afile'], ['--out-dir', 'afile', 'is a file, not a folder']),
    ('excitation.py', excite('timm.pth', GOOD, '--classes', 'a', 'blue'), ['blue']),
    ('excitation.py', excite(model='se_resnet19_plugin'), ["'se_resnet19_plugin'", 'neither']),
    ('excitation.py', excite(model='{root}/cfg/syntax.py'), ['syntax.py', 'SyntaxError']),
    ('excitation.py', excite(model='{root}/cfg/tiny.py'), ['CHECKPOINT', 'timm.pth', 'does not fit']),
    ('excitation.py', excite('timm.pth', GOOD, '--batch-size', '0'), ['--batch-size', "'0'"]),
    ('excitation.py', excite('timm.pth', GOOD, '--crop-pct', '-1'), ['--crop-pct', "'-1'"]),
    ('excitation.py', excite('timm.pth', GOOD, '--num-classes', '3'), ['CHECKPOINT', 'shape: fc.weight']),

    ('ablate.py', ablate('missing.pth'), ['CHECKPOINT', 'missing.pth', 'not found']),
    ('ablate.py', ablate('trunc.pth'), ['CHECKPOINT', 'trunc.pth', 'truncated']),
    ('ablate.py', ablate('timm.pth', GOOD, '--stages', 'layer9'), ['--stages', 'layer9']),
    ('ablate.py', ablate('timm.pth', GOOD, '--out', '{root}/afile/table.csv'), ['--out', 'afile', 'is a file']),
    ('ablate.py', ablate('timm.pth', GOOD, '--out', '{root}/adir'), ['--out', 'adir', 'is a folder']),
    ('ablate.py', ablate('timm.pth', '{root}/data/three/train'), ['--data', '3 class folders']),
    ('ablate.py', ablate('timm.pth', GOOD, '--max-images', '0'), ['--max-images', "'0'"]),
    ('ablate.py', ablate('timm.pth', GOOD, '--out', '{out}/tables/'), ['--out', 'ends with a slash']),
    ('ablate.py', ablate('timm.pth', GOOD, '--out', '/proc/table.csv'), ['--out', '/proc', 'takes no new files']),
    ('excitation.py', excite('timm.pth', GOOD, '--crop-pct', 'inf'), ['--crop-pct', "'inf'"]),
]
_counter = itertools.count()


def case_id(case: tuple) -> str:
    tool, argv, words = case
    return f'{tool[:-3]}-{words[0]}-{words[-1]}'.replace(' ', '_').replace('/', '_')[:60]


def as_argv(argv: List[str], root: Path, out: Path) -> List[str]:
    return [a.replace('{root}', str(root)).replace('{out}', str(out)) for a in argv]


def unique_config(argv: List[str], folder: Path) -> List[str]:
    """The MMPretrain config in ``argv`` copied under a name of its own: mmengine names its loggers and
    visualizers after the config and the second, and reuses those of an earlier Runner of the same name."""
    if not argv or not argv[0].endswith('tiny.py') and not argv[0].endswith('unknown_type.py'):
        return argv
    copy = folder / f'{Path(argv[0]).stem}_{next(_counter)}.py'
    copy.write_text(f'_base_ = [{argv[0]!r}]\n')
    return [str(copy), *argv[1:]]


@pytest.mark.parametrize('tool, argv, words', CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(tool, argv, words, root, tools, tmp_path, monkeypatch, capsys):
    if tool in ('train.py', 'test.py') and '--amp' in argv and torch.cuda.is_available():
        pytest.skip('a GPU is available')
    (tmp_path / 'cfg').mkdir()
    out = tmp_path / 'run'
    out.mkdir()
    monkeypatch.chdir(out)  # where default outputs (work_dirs/...) would go
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    argv = unique_config(as_argv(argv, root, out), tmp_path / 'cfg')
    before = files(root)
    with pytest.raises(SystemExit) as info:
        run(tools[tool].main, tool, argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.endswith('\n') and 'Traceback' not in err, err
    line = err.rstrip('\n')
    assert line.startswith(f'{tool}: ') and all(word in line for word in words), line
    assert 'weights_only' not in line or 'safe (weights_only)' in line  # no advice to load unsafely
    assert files(root) == before and list(out.iterdir()) == []


def test_debug_flag_and_environment_show_the_traceback(root, tools, monkeypatch, tmp_path):
    argv = [str(root / 'ckpt' / 'junk.pth'), str(tmp_path / 'out.pth'), '--to', 'timm']
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(CheckpointError, match='not a readable PyTorch checkpoint'):
        run(tools['convert_checkpoint.py'].main, 'convert_checkpoint.py', [*argv, '--debug'])
    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(InputError, match="'no_such_net'"):
        run(tools['complexity.py'].main, 'complexity.py', ['no_such_net'])
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_of_the_runner_and_of_train_timm_are_read(root, tmp_path):
    """What tools/train.py (mmengine's HistoryBuffer, numpy) and train_timm.py (argparse args) save is no bad input."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    from se_plugins.io import load_state_dict
    weights = {'conv1.weight': torch.ones(2, 3, 1, 1)}
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save({'state_dict': weights, 'meta': {'best': np.float64(1.0)}, 'message_hub': {'loss': buffer}},
               tmp_path / 'epoch_1.pth')
    assert torch.equal(load_state_dict(tmp_path / 'epoch_1.pth')['conv1.weight'], weights['conv1.weight'])
    assert 'fc.weight' in load_state_dict(root / 'ckpt' / 'timm.pth')


def test_a_file_is_read_by_its_content_not_its_name(tmp_path):
    """A safetensors file named .pth reads as safetensors; a torch.save file named .safetensors does not."""
    from safetensors.torch import save_file

    from se_plugins.io import load_state_dict
    weights = {'conv1.weight': torch.arange(6.).reshape(2, 3, 1, 1)}
    save_file(weights, tmp_path / 'weights.pth')
    assert torch.equal(load_state_dict(tmp_path / 'weights.pth')['conv1.weight'], weights['conv1.weight'])
    torch.save(weights, tmp_path / 'weights.safetensors')
    with pytest.raises(CheckpointError, match='not a readable safetensors file'):
        load_state_dict(tmp_path / 'weights.safetensors')


def test_tied_weights_are_written_as_safetensors(tmp_path):
    from se_plugins.io import load_state_dict, save_atomic
    weight = torch.randn(4, 3)
    save_atomic({'embed.weight': weight, 'head.weight': weight}, tmp_path / 'tied.safetensors')
    loaded = load_state_dict(tmp_path / 'tied.safetensors')
    assert torch.equal(loaded['embed.weight'], weight) and torch.equal(loaded['head.weight'], weight)


def test_a_failed_run_removes_only_what_the_runner_writes(tmp_path):
    """Preflight's undo takes the Runner's log folder and config dump, not what another process wrote."""
    from se_plugins.engine.checks import Preflight
    (tmp_path / 'notes.txt').write_text('the user\'s\n')
    with pytest.raises(InputError), Preflight('cfg/tiny.py', str(tmp_path)):
        (tmp_path / '20261204_021538').mkdir()
        (tmp_path / 'tiny.py').write_text('dumped\n')
        (tmp_path / 'other_process.txt').write_text('written meanwhile\n')
        raise KeyError('NoSuchNet is not in the registry')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt', 'other_process.txt']


@pytest.mark.parametrize('nproc', ['0', 'x', '-1'])
def test_dist_scripts_refuse_a_bad_nproc(nproc, tmp_path):
    done = subprocess.run(['bash', str(ROOT / 'tools' / 'dist_train.sh'), 'cfg.py', nproc], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"dist_run.sh: NPROC '{nproc}': not a number of processes; give an integer >= 1"]


def test_a_bug_keeps_its_traceback():
    def main(argv):
        raise TypeError('a bug, not bad input')

    with pytest.raises(TypeError, match='a bug'):
        run(main, 'tool.py', [])


def test_every_tool_has_debug_and_is_in_the_battery(tools):
    assert {tool for tool, _, _ in CASES} == set(TOOLS)
    for tool, path in TOOLS.items():
        text = (ROOT / path).read_text()
        assert f"run(main, '{tool}'" in text and f"prog='{tool}'" in text, tool


COMMANDS = {  # the real command lines: (tool, argv, words)
    'convert': ('convert_checkpoint.py', convert('junk.pth'), ['junk.pth', 'not a readable PyTorch checkpoint']),
    'excitation': ('excitation.py', excite('junk.pth'), ['junk.pth', 'not a readable PyTorch checkpoint']),
    'ablate': ('ablate.py', ablate('trunc.pth'), ['trunc.pth', 'truncated']),
    'train': ('train.py', ['{root}/cfg/syntax.py'], ['syntax.py', 'SyntaxError']),
    'test': ('test.py', [T, '{root}/ckpt/missing.pth'], ['CHECKPOINT', 'missing.pth', 'not found']),
    'train_timm': ('train_timm.py', ['--config', '{root}/cfg/bad.yaml'], ['bad.yaml', 'not valid YAML']),
    'prepare_digits': ('prepare_digits.py', ['--out', '{root}/afile/digits'], ['--out', 'is a file']),
    'benchmark': ('benchmark.py', ['--models', 'no_such_net'], ['no_such_net', 'unknown to timm']),
    'complexity': ('complexity.py', ['no_such_net'], ['no_such_net', 'neither']),
}


@pytest.mark.slow
def test_the_command_lines_print_one_line_and_exit_2(root, tmp_path):
    """One real command line per tool, run side by side; and --debug shows the traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONWARNINGS', DEBUG_ENV)}
    commands = {name: [sys.executable, str(ROOT / TOOLS[tool]), *as_argv(argv, root, tmp_path)]
                for name, (tool, argv, _) in COMMANDS.items()}
    commands['debug'] = commands['convert'] + ['--debug']
    before = files(root)
    running = {name: subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name, command in commands.items()}
    results = {name: (process.wait(timeout=300), process.communicate()[1]) for name, process in running.items()}
    code, err = results.pop('debug')
    assert code == 1 and 'Traceback' in err and 'CheckpointError' in err, err
    for name, (code, err) in results.items():
        tool, _, words = COMMANDS[name]
        assert code == 2 and len(err.splitlines()) == 1, f'{name}: {code}\n{err}'
        assert err.startswith(f'{tool}: ') and all(word in err for word in words), err
    assert files(root) == before and list(tmp_path.iterdir()) == []
