"""tools/train_timm.py: one tiny epoch end to end, atomic checkpoints, and clear errors before training.

Bad input runs ``main`` in this process through :func:`se_plugins.cli.run`, as the script's ``__main__``
block does: one line on stderr, exit status 2, nothing left in the output folder's parent.
"""
import argparse
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch
import yaml

timm = pytest.importorskip('timm')
import se_plugins  # noqa: E402,F401  (registers the models for the checks in this process)
from scripts import load_script  # noqa: E402
from se_plugins.cli import DEBUG_ENV, InputError, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'train_timm.py'
CONFIG = ROOT / 'configs' / 'timm' / 'se_resnet18_digits.yaml'
CLASSES = ('circle', 'square', 'stripe')
TINY = ['--model-kwargs', 'channels=(8,16,32,64)']  # a 26k-parameter SE-ResNet-18 for steps that must run


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    """Bad input ends with one line, as without SE_PLUGINS_DEBUG set."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)


@pytest.fixture(scope='module')
def train_timm():
    return load_script('tools/train_timm.py')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> Path:
    """DIR/{train,val}/<class>/*.png: 3 classes x 8 images of 32x32, one colour per class."""
    from PIL import Image
    root = tmp_path_factory.mktemp('imagefolder')
    generator = torch.Generator().manual_seed(0)
    for split in ('train', 'val'):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for index in range(8):
                pixels = torch.randint(0, 60, (32, 32, 3), generator=generator, dtype=torch.uint8)
                pixels[..., label] += 180
                Image.fromarray(pixels.numpy()).save(root / split / name / f'{index}.png')
    return root


def tiny_args(data_dir: Path, output: Path, *extra: str) -> list:
    return ['--model', 'se_resnet18_plugin', '--data-dir', str(data_dir), '--num-classes', '3', '--img-size', '32',
            '--epochs', '1', '-b', '8', '-j', '0', '--output', str(output), *extra]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared CPU two OpenMP threads can be ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_trains_one_epoch_end_to_end(data_dir, tmp_path):
    output = tmp_path / 'out'
    result = subprocess.run([sys.executable, str(SCRIPT), *tiny_args(data_dir, output)], capture_output=True,
                            text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'se_resnet18_plugin: 11,268,163 parameters; 24 train / 24 val images, 3 classes' in result.stdout
    assert 'epoch 1/1 step 3/3 loss' in result.stdout
    final = re.search(r'final val top-1 ([\d.]+) top-5 ([\d.]+)', result.stdout)
    assert final, result.stdout
    top1, top5 = map(float, final.groups())
    assert 0 <= top1 <= 100 and top5 == 100.0  # 3 classes: the top 5 always hold the label
    assert sorted(p.name for p in output.iterdir()) == ['checkpoint-0.pth.tar', 'last.pth.tar', 'model_best.pth.tar']
    model = timm.create_model('se_resnet18_plugin', num_classes=3)
    timm.models.load_checkpoint(model, str(output / 'model_best.pth.tar'), strict=True)  # timm's own loader
    checkpoint = torch.load(output / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert (checkpoint['arch'], checkpoint['epoch'], round(checkpoint['metric'], 2)) == ('se_resnet18_plugin', 0, top1)


@pytest.mark.slow
def test_config_ema_se_cfg_and_atomic_checkpoints(train_timm, data_dir, tmp_path, monkeypatch, one_thread):
    replaced, real_replace = [], os.replace

    def spy_replace(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)
    monkeypatch.setattr(os, 'replace', spy_replace)
    output = tmp_path / 'out'
    metrics = train_timm.main(['--config', str(CONFIG), *tiny_args(
        data_dir, output, '--model-ema', '--model-kwargs', "se_cfg={'ratio': 8, 'stages': [False, True, True, True]}")])
    assert set(metrics) == {'loss', 'top1', 'top5'} and 0 <= metrics['top1'] <= 100
    assert replaced == [('tmp.pth.tar', 'last.pth.tar')]  # CheckpointSaver: write tmp, then rename into place
    assert not (output / 'tmp.pth.tar').exists()
    checkpoint = torch.load(output / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert 'state_dict_ema' in checkpoint and 'layer1.0.se.conv1.conv.weight' not in checkpoint['state_dict']
    assert checkpoint['state_dict']['layer2.0.se.conv1.conv.weight'].shape == (16, 128, 1, 1)  # 128 // 8
    assert checkpoint['args'].hflip == 0.0 and checkpoint['args'].scale == [0.8, 1.0]  # from the YAML


def test_config_example_names_only_known_options(train_timm):
    config = yaml.safe_load(CONFIG.read_text())
    known = set(vars(train_timm.build_parser().parse_args([])))
    assert set(config) <= known and config['model'] == 'se_resnet18_plugin' and config['num_classes'] == 10


def test_config_recipe_reaches_timms_factories(train_timm, data_dir, tmp_path):
    """The demo recipe's augmentation and per-update schedule are what timm's loader and scheduler get."""
    args = train_timm.parse_args(train_timm.build_parser(), ['-c', str(CONFIG), '--data-dir', str(data_dir),
                                                              '--num-classes', '3', '--output', str(tmp_path)])
    datasets = train_timm.create_datasets(args)
    model = timm.create_model(args.model, num_classes=3)
    data_config = timm.data.resolve_data_config(dict(img_size=args.img_size, crop_pct=args.crop_pct), model=model)
    crop, *others = train_timm.create_loaders(args, datasets, data_config)['train'].dataset.transform.transforms
    assert (type(crop).__name__, crop.scale, crop.ratio, crop.size) == (
        'RandomResizedCropAndInterpolation', (0.8, 1.0), (0.9, 1.1), (32, 32))
    jitter = others[0]  # no flip; timm keeps a ColorJitter for --color-jitter 0, with nothing to jitter
    assert [type(t).__name__ for t in others] == ['ColorJitter', 'MaybeToTensor', 'Normalize']
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (None, None, None, None)
    scheduler = train_timm.create_optimizer(args, model, 45)[1]
    assert (scheduler.t_in_epochs, scheduler.t_initial, scheduler.warmup_t) == (False, 135, 45)  # 3 epochs x 45
    lrs = [scheduler._get_lr(t)[0] for t in (0, 44, 45, 134)]  # warmup from --warmup-lr, then timm's cosine
    assert lrs == pytest.approx([1e-5, 1e-5 + 44 * (2e-3 - 1e-5) / 45, 1e-3 * (1 + math.cos(math.pi / 3)),
                                 1e-3 * (1 + math.cos(math.pi * 134 / 135))])


def usage_error(train_timm, argv, capsys) -> str:
    """The one line on stderr of ``argv`` run as the script runs (exit status 2, no traceback)."""
    with pytest.raises(SystemExit) as info:
        run(train_timm.main, 'train_timm.py', argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith('train_timm.py: ') and 'Traceback' not in err, err
    return err


def test_missing_data_folder(train_timm, tmp_path, capsys):
    err = usage_error(train_timm, tiny_args(tmp_path / 'nowhere', tmp_path / 'out'), capsys)
    assert "--data-dir '" in err and 'no train/ folder' in err and 'DIR/validation/<class>/*.png' in err


def layout(data_dir: Path, root: Path, **folders: str) -> Path:
    """``root/<name>`` copied from ``data_dir/<split>`` for each ``name=split``."""
    for name, split in folders.items():
        shutil.copytree(data_dir / split, root / name)
    return root


def datasets_of(train_timm, root: Path, *extra: str) -> tuple:
    """(train folder, val folder, their image counts) that create_datasets reads, and the args it leaves."""
    args = train_timm.parse_args(train_timm.build_parser(), tiny_args(root, root / 'out', *extra))
    datasets = train_timm.create_datasets(args)
    found = tuple(Path(datasets[split].reader.root).relative_to(root).as_posix() for split in ('train', 'val'))
    return found + (len(datasets['train']), len(datasets['val'])), (args.train_split, args.val_split)


@pytest.mark.parametrize('folders, expected', [
    (dict(train='train', validation='val'), ('train', 'validation')),  # timm's train.py layout
    (dict(train='train', val='val'), ('train', 'val')),  # ours (MMPretrain's): val/ when validation/ is absent
    (dict(train='train', validation='val', val='train'), ('train', 'validation')),  # validation/ first, as timm
    (dict(training='train', valid='val'), ('training', 'valid')),  # timm's other names
])
def test_split_folders_found_as_timm_finds_them(train_timm, data_dir, tmp_path, folders, expected):
    root = layout(data_dir, tmp_path / 'data', **folders)
    found, recorded = datasets_of(train_timm, root)
    assert found == expected + (24, 24) and recorded == expected


def test_named_split_folders(train_timm, data_dir, tmp_path):
    root = layout(data_dir, tmp_path / 'data', fit='train', holdout='val', validation='val')
    found, recorded = datasets_of(train_timm, root, '--train-split', 'fit', '--val-split', 'holdout')
    assert found == ('fit', 'holdout', 24, 24) and recorded == ('fit', 'holdout')


@pytest.mark.parametrize('folders, extra, expected', [
    (dict(train='train', validation='val'), ['--val-split', 'val'], ('train', 'validation')),  # S04
    (dict(train='train', val='val'), ['--train-split', 'training'], ('train', 'val')),  # S05
    (dict(train='train', val='val'), ['--val-split', 'validation'], ('train', 'val')),  # S06
    (dict(training='train', eval='val'), ['--train-split', 'train', '--val-split', 'valid'], ('training', 'eval')),
])
def test_a_named_split_is_found_by_timms_other_names(train_timm, data_dir, tmp_path, folders, extra, expected):
    """As timm's create_dataset(search_split=True): DIR/NAME, else a folder of another name of the split."""
    root = layout(data_dir, tmp_path / 'data', **folders)
    found, recorded = datasets_of(train_timm, root, *extra)
    assert found == expected + (24, 24) and recorded == expected


@pytest.mark.parametrize('extra, words', [
    (['--val-split', 'holdout'], ["--val-split 'holdout': no folder", 'holdout/<class>/*.png']),
    (['--train-split', 'fit'], ["--train-split 'fit': no folder"]),
    (['--val-split', 'evaluation'], ["--val-split 'evaluation': no folder"]),  # no other name of it either
    (['--val-split', ''], ["--val-split '': no folder"]),
])
def test_a_named_split_folder_that_is_not_found(train_timm, data_dir, tmp_path, capsys, extra, words):
    root = layout(data_dir, tmp_path / 'data', train='train', test='val')
    err = usage_error(train_timm, tiny_args(root, tmp_path / 'out', *extra), capsys)
    assert all(word in err for word in words), err


def test_no_validation_folder(train_timm, data_dir, tmp_path, capsys):
    root = layout(data_dir, tmp_path / 'data', train='train')
    err = usage_error(train_timm, tiny_args(root, tmp_path / 'out'), capsys)
    assert 'no validation/ or val/ folder' in err and '--val-split' in err


REFUSED = ("train_timm.py: {} of timm's train.py that this script does not support; "
           "use timm's train.py through python -m se_plugins.timm.run train.py ...\n")


@pytest.mark.parametrize('extra, names', [
    (['--mixup', '0.2'], '--mixup is an option'),
    (['--mixup=0.2'], '--mixup is an option'),
    (['--resume', 'last.pth.tar', '--opt-betas', '0.9', '0.99'], '--resume, --opt-betas are options'),
    (['-vb', '64'], '-vb is an option'),
])
def test_timm_options_we_lack_are_refused_by_name(train_timm, data_dir, tmp_path, capsys, extra, names):
    err = usage_error(train_timm, tiny_args(data_dir, tmp_path / 'out', *extra), capsys)
    assert err == REFUSED.format(names)


def test_timm_option_in_the_config_is_refused_by_name(train_timm, tmp_path, capsys):
    path = tmp_path / 'timm.yaml'
    path.write_text('model: se_resnet18_plugin\nmixup: 0.2\ncutmix: 1.0\n')
    err = usage_error(train_timm, ['-c', str(path)], capsys)
    assert err == REFUSED.format(f"--config {str(path)!r}: --cutmix, --mixup are options")


def test_an_option_of_no_script_is_a_usage_error(train_timm, data_dir, tmp_path, capsys):
    err = usage_error(train_timm, tiny_args(data_dir, tmp_path / 'out', '--mixupp', '0.2'), capsys)
    assert err == 'train_timm.py: unrecognized arguments: --mixupp 0.2\n'  # one line: --help shows the usage


def our_options(train_timm) -> dict:
    """{dest: option strings} of tools/train_timm.py, but --help and --debug (every tool's)."""
    return {a.dest: a.option_strings for a in train_timm.build_parser()._actions if a.dest not in ('help', 'debug')}


def test_timm_only_options_are_not_ours_nor_abbreviate_ours(train_timm):
    ours = [name for names in our_options(train_timm).values() for name in names]
    assert not [(timm_only, name) for timm_only in train_timm.TIMM_ONLY for name in ours
                if name.startswith(timm_only)]  # argparse would take such a prefix as our option


def timm_train_py() -> Optional[Path]:
    """timm's train.py, which neither timm's wheel nor its sdist holds: $TIMM_TRAIN_PY, else a checkout here."""
    candidates = [os.environ.get('TIMM_TRAIN_PY', ''), *Path('/tmp/timm_sdist').glob('*/train.py'),
                  *(ROOT / '.cache' / 'upstream').glob('*/train.py')]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def test_options_have_the_names_of_timms_train_py(train_timm):
    path = timm_train_py()
    if path is None:
        pytest.skip("timm's train.py not found (set TIMM_TRAIN_PY to a pytorch-image-models checkout's train.py)")
    spec = importlib.util.spec_from_file_location('timm_train_py', path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # builds its parsers; main() runs only as __main__
    theirs = {}
    for parser in (getattr(script, 'config_parser', None), script.parser):  # -c/--config is in the first
        if not isinstance(parser, argparse.ArgumentParser):
            continue
        for action in parser._actions:
            theirs.setdefault(action.dest, []).extend(action.option_strings)
    all_theirs = {name for names in theirs.values() for name in names}
    assert sorted(train_timm.TIMM_ONLY - all_theirs) == []  # the list names only real options of theirs
    assert {dest: names for dest, names in our_options(train_timm).items()
            if not set(names) <= set(theirs.get(dest, ()))} == {}  # ours: their names, for the same thing
    defaults = {dest: script.parser.get_default(dest) for dest in ('train_split', 'val_split')}
    assert defaults == {'train_split': train_timm.SPLITS['train'], 'val_split': train_timm.SPLITS['val']}


def test_num_classes_must_match_folders(train_timm, data_dir, tmp_path, capsys):
    argv = tiny_args(data_dir, tmp_path / 'out')
    argv[argv.index('--num-classes') + 1] = '5'
    err = usage_error(train_timm, argv, capsys)
    assert '--num-classes 5 does not match the 3 class folders' in err and str(list(CLASSES)) in err


def test_val_classes_must_match_train(train_timm, data_dir, tmp_path, capsys):
    odd = tmp_path / 'odd'
    for split, names in (('train', CLASSES), ('val', CLASSES[:2] + ('triangle',))):
        for name in names:
            (odd / split / name).mkdir(parents=True)
            (odd / split / name / '0.png').write_bytes((data_dir / 'train' / CLASSES[0] / '0.png').read_bytes())
    err = usage_error(train_timm, tiny_args(odd, tmp_path / 'out'), capsys)
    assert 'differ from val classes' in err and 'triangle' in err


def test_unknown_model(train_timm, data_dir, tmp_path, capsys):
    argv = tiny_args(data_dir, tmp_path / 'out')
    argv[argv.index('--model') + 1] = 'se_resnet19_plugin'
    err = usage_error(train_timm, argv, capsys)
    assert "--model 'se_resnet19_plugin': unknown to timm" in err and 'se_resnet18_plugin' in err


def test_bad_se_cfg_is_reported_before_training(train_timm, data_dir, tmp_path, capsys):
    err = usage_error(train_timm, tiny_args(data_dir, tmp_path / 'out', '--model-kwargs', "se_cfg={'ratios': 8}"),
                      capsys)
    assert "unknown se_cfg key(s) ['ratios']" in err and not (tmp_path / 'out').exists()


def test_missing_required_options(train_timm, capsys):
    err = usage_error(train_timm, ['--epochs', '1'], capsys)
    assert 'missing --model, --data-dir, --num-classes' in err


@pytest.mark.parametrize('content, words', [
    ('model: se_resnet18_plugin\nlearning_rate: 0.1\nbatchsize: 4\n',
     ["unknown key(s) ['batchsize', 'learning_rate']", 'allowed:', "'batch_size'"]),
    ('- just\n- a list\n', ['expected a mapping']),
])
def test_bad_config(train_timm, tmp_path, capsys, content, words):
    path = tmp_path / 'bad.yaml'
    path.write_text(content)
    err = usage_error(train_timm, ['--config', str(path)], capsys)
    assert all(word in err for word in words), err


def test_missing_config_file(train_timm, tmp_path, capsys):
    err = usage_error(train_timm, ['--config', str(tmp_path / 'none.yaml')], capsys)
    assert 'none.yaml' in err and 'no such file' in err


YAML = 'model: se_resnet18_plugin\n'  # completed by tiny_args on the command line
BOMB = 'model_kwargs:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n' + ''.join(  # 10**7 x's once expanded
    f'  a{i}: &a{i} [{", ".join([f"*a{i - 1}"] * 10)}]\n' for i in range(1, 7))
BAD_INPUT = [  # (the tester's case id, extra command line, YAML or None, words of the line)
    ('F01', ['--model-kwargs', 'ratio'], None, ["argument --model-kwargs: expected KEY=VALUE items; got ['ratio']"]),
    ('F01b', ['--model-kwargs', 'se_cfg={[1]: 2}'], None, ['argument --model-kwargs', 'unhashable']),
    ('F04', ['--model-kwargs', 'channels=(8,16)'], None,
     ['--model se_resnet18_plugin: the first training step failed', "no attribute 'layer3'",
      'check --model-kwargs, --img-size and -b (--debug shows where)']),
    ('F08', ['--model', 'vit_tiny_patch16_224'], None,
     ['--model vit_tiny_patch16_224: the first training step failed', "Input height (32) doesn't match model (224)"]),
    ('F09', ['--device', 'meta'], None, ["--device 'meta'", 'cpu or cuda, not meta']),
    ('F15', [*TINY, '-b', '1'], None, ['the first training step failed', 'Expected more than 1 value per channel']),
    ('H03', ['--model-kwargs', 'pretrained=True'], None,
     ['--model-kwargs pretrained: a keyword of timm.create_model that loads weights', 'se_plugins.timm.run']),
    ('H03b', [], YAML + 'model_kwargs: {pretrained_cfg_overlay: {}, checkpoint_path: x.pth}\n',
     ['--model-kwargs pretrained_cfg_overlay, checkpoint_path: keywords', 'se_plugins.timm.run']),
    ('F17', [*TINY, '-b', '64'], None,
     ['-b 64: larger than the 24 training images of', "timm's loader drops the last partial batch",
      'use -b 24 or less']),
    ('Y20', TINY, YAML + 'batch_size: 30\n', ['-b 30: larger than the 24 training images']),
    ('Y5', [], YAML + 'model_kwargs: [channels, 8]\n',
     ['--config', "model_kwargs: ['channels', 8] is not a mapping of keyword: value"]),
    ('Y6', [], YAML + 'model_kwargs: channels=8\n', ["model_kwargs: 'channels=8' is not a mapping of keyword: value"]),
    ('F05', ['--model-kwargs', 'channels=8'], None,
     ["object of type 'int' has no len(); give keywords that timm.create_model('se_resnet18_plugin', ...) takes"]),
    ('Y19', TINY, YAML + 'scale: [0.9, 0.1]\n', ['--scale 0.9 0.1: LOW is above HIGH', '--scale 0.1 0.9']),
    ('Y19b', [*TINY, '--ratio', '2', '1'], None, ['--ratio 2.0 1.0: LOW is above HIGH']),
    ('Y20b', [], YAML + 'batch_size: 8\nbatch-size: 4\n', ['batch_size and batch-size set the same option']),
    ('null', [], YAML + 'epochs:\n', ['epochs: None is not a value', 'remove the key']),
    ('F10', [], YAML + BOMB, ['expands to more than 100000 characters (YAML aliases?); write the values out']),
    ('F10b', [], YAML + 'model_kwargs: {bogus: [%s]}\n' % ', '.join(['xxxxxxxx'] * 5000),
     ["--model se_resnet18_plugin --model-kwargs {'bogus': ['xxxxxxxx', ", "...]}: ", 'bogus']),
    ('F11', ['--opt', 'fusedadam'], None, ["--opt 'fusedadam': ", 'give another --opt, e.g. adamw or sgd']),
    ('F11b', ['--opt', 'bnbadamw'], None, ["--opt 'bnbadamw': ", 'give another --opt']),
    ('F12', ['--seed', '1099511627776'], None,
     ["argument --seed: must be an integer >= 0 and <= 4294967295; got '1099511627776'"]),
    ('F12b', [], YAML + 'seed: 4294967296\n', ['seed: 4294967296 is not valid', '<= 4294967295']),
    ('F14', ['--output', ''], None, ["--output '': empty; give the folder for the checkpoints"]),
    ('F20', ['--opt', 'sgd', '--momentum', '2'], None, ["argument --momentum: must be a number >= 0 and < 1; got '2'"]),
    ('F20b', [], YAML + 'momentum: 1.0\n', ['momentum: 1.0 is not valid (must be a number >= 0 and < 1']),
    ('F20c', ['--lr', '1e-3', '--min-lr', '1'], None, ['--min-lr 1.0: above --lr 0.001; give a --min-lr <= --lr']),
]


@pytest.mark.parametrize('extra, config, words', [case[1:] for case in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_leaves_nothing(train_timm, data_dir, tmp_path, capsys, one_thread,
                                                  extra, config, words):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    argv = tiny_args(data_dir, run_dir / 'out', *extra)
    if config is not None and 'batch_size: 30' in config:  # the YAML's batch size, which -b 8 would override
        del argv[argv.index('-b'):argv.index('-b') + 2]
    if config is not None:
        (tmp_path / 'bad.yaml').write_text(config)
        argv = ['--config', str(tmp_path / 'bad.yaml'), *argv]
    err = usage_error(train_timm, argv, capsys)
    assert all(word in err for word in words), err
    assert len(err) < 1000, err[:2000]  # values are cut short (F10: a YAML of aliases printed whole was 58 MB)
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize('extra, match', [
    (['--data-dir', 'nowhere'], "--data-dir 'nowhere': no train/ folder"),
    (['--opt', 'adamm'], "--opt 'adamm'"),
    (['--sched', 'cosinus'], "--sched 'cosinus'"),
    (['--model', 'se_resnet19_plugin'], "--model 'se_resnet19_plugin': unknown to timm"),
    (['--mixup', '0.2'], '--mixup is an option'),
    (['--model-kwargs', 'channels=(8,16)'], 'the first training step failed'),
])
def test_debug_shows_the_traceback(train_timm, data_dir, tmp_path, monkeypatch, one_thread, extra, match):
    """--debug (or SE_PLUGINS_DEBUG=1) lets the InputError through, with the error it maps chained."""
    argv = tiny_args(data_dir, tmp_path / 'out', *TINY, *extra)
    with pytest.raises(InputError, match=re.escape(match)):
        run(train_timm.main, 'train_timm.py', [*argv, '--debug'])
    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(InputError, match=re.escape(match)) as info:
        run(train_timm.main, 'train_timm.py', argv)
    assert not (tmp_path / 'out').exists()
    if 'first training step' in match:
        assert isinstance(info.value.__cause__, AttributeError)


def test_a_yaml_config_mistake_shows_its_traceback_with_debug(train_timm, tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('model: se_resnet18_plugin\nepochs: [1, 2\n')
    with pytest.raises(InputError, match='not valid YAML at line'):
        run(train_timm.main, 'train_timm.py', ['--config', str(path), '--debug'])


def test_a_runtime_error_of_timms_create_model_is_one_line(train_timm, data_dir, tmp_path, monkeypatch):
    def create_model(*args, **kwargs):
        raise RuntimeError('No pretrained weights exist for se_resnet18_plugin. Use `pretrained=False`.')
    monkeypatch.setattr(train_timm.timm, 'create_model', create_model)
    args = train_timm.parse_args(train_timm.build_parser(), tiny_args(data_dir, tmp_path / 'out'))
    with pytest.raises(InputError, match=re.escape(
            "--model se_resnet18_plugin --model-kwargs {}: No pretrained weights exist for se_resnet18_plugin. "
            "Use `pretrained=False`; give keywords")):
        train_timm.create_model(args)


def test_an_error_after_the_first_update_is_no_bad_input(train_timm, data_dir, tmp_path, monkeypatch, one_thread):
    """Once an optimizer update has run, a failure is a bug or the machine's: its traceback, and the output stays."""
    def evaluate(*args, **kwargs):
        raise RuntimeError('a failure after training steps')
    monkeypatch.setattr(train_timm, 'evaluate', evaluate)
    with pytest.raises(RuntimeError, match='a failure after training steps'):
        run(train_timm.main, 'train_timm.py', tiny_args(data_dir, tmp_path / 'out', *TINY))
    assert (tmp_path / 'out').is_dir()


def test_an_existing_output_folder_keeps_its_files(train_timm, data_dir, tmp_path, capsys, one_thread):
    output = tmp_path / 'out'
    output.mkdir()
    (output / 'notes.txt').write_text('mine\n')
    usage_error(train_timm, tiny_args(data_dir, output, '--model-kwargs', 'channels=(8,16)'), capsys)
    assert [p.name for p in output.iterdir()] == ['notes.txt']
