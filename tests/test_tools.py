"""End-to-end checks of tools/train.py, tools/test.py and tools/dist_train.sh on CPU.

A tiny SE-ResNet-18 (16 stem channels) trains on 60 real digit images for a few epochs, so
each run takes seconds; most of a run's time is importing the frameworks.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List

import pytest
import torch

pytest.importorskip('mmpretrain')

from scripts import load_script  # noqa: E402
from se_plugins.cli import InputError  # noqa: E402
from se_plugins.data import prepare_digits  # noqa: E402
from se_plugins.engine import allow_mmengine_checkpoints  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / 'configs' / 'demo' / 'se-resnet18_1xb32_digits.py'

TINY_CONFIG = '''
_base_ = [{demo!r}]
data_root = {data_root!r}
model = dict(backbone=dict(stem_channels=16, base_channels=16), head=dict(in_channels=128))
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root,
                                                   indices=list(range(0, 1437, 24))))
val_dataloader = dict(batch_size=20, dataset=dict(data_root=data_root,
                                                  indices=list(range(0, 360, 18))))
test_dataloader = val_dataloader
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=3, eta_min=1e-5)]
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=2))
randomness = dict(seed=0, deterministic=True)
{extra}
'''

# Kills its own process with SIGKILL after a given iteration: a crash at an exact point.
SIGKILL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigkillHook(Hook):
    def __init__(self, after_iter):
        self.after_iter = after_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.after_iter:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture(scope='module')
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits ImageFolder and CIFAR-10 batches, prepared once for this module."""
    root = tmp_path_factory.mktemp('data') / 'digits'
    prepare_digits(root)
    return root


def write_config(folder: Path, digits: Path, epochs: int = 2, extra: str = '',
                 name: str = 'tiny') -> Path:
    """A tiny config inheriting the demo config, as ``folder/<name>_<epochs>ep.py``."""
    path = folder / f'{name}_{epochs}ep.py'
    path.write_text(TINY_CONFIG.format(demo=str(DEMO_CONFIG), epochs=epochs, extra=extra,
                                       data_root=str(digits / 'imagefolder')))
    return path


def run_tool(args: List[str], cwd: Path, env: Dict[str, str] = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``args`` (a tool and its arguments) with this interpreter, as a user would."""
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=240)
    if check and result.returncode != 0:
        pytest.fail(f'{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n'
                    f'{result.stderr[-3000:]}')
    return result


def train(config: Path, work_dir: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    """Run tools/train.py on ``config``."""
    return run_tool([sys.executable, str(ROOT / 'tools' / 'train.py'), str(config),
                     '--work-dir', str(work_dir), *extra], cwd=work_dir.parent, **kwargs)


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py``."""
    return load_script(f'tools/{name}.py')


def state_dict(checkpoint: Path) -> Dict[str, torch.Tensor]:
    """The model weights of an mmengine checkpoint, loaded the safe way (``weights_only``)."""
    allow_mmengine_checkpoints()
    return torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']


def assert_same_weights(a: Path, b: Path) -> None:
    """Every tensor of the two checkpoints is bitwise equal."""
    first, second = state_dict(a), state_dict(b)
    assert first.keys() == second.keys()
    differing = [k for k in first if not torch.equal(first[k], second[k])]
    assert not differing, f'{len(differing)} tensors differ, e.g. {differing[:3]}'


def free_port() -> int:
    """A TCP port nobody listens on (helpers run tests in parallel on this machine)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_train_test_and_resume(digits: Path, tmp_path: Path) -> None:
    """Train 2 epochs, test the checkpoint (same top-1 as validation), resume to a third."""
    work_dir = tmp_path / 'work'
    out = train(write_config(tmp_path, digits, epochs=2), work_dir)
    assert (work_dir / 'epoch_2.pth').is_file()
    assert 'Epoch(train) [2]' in out.stdout + out.stderr
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    val_top1 = [json.loads(line) for line in scalars if 'accuracy/top1' in line][-1]
    assert val_top1['step'] == 2  # validation after epoch 2

    metrics_file = tmp_path / 'metrics.json'
    run_tool([sys.executable, str(ROOT / 'tools' / 'test.py'),
              str(write_config(tmp_path, digits, epochs=2)), str(work_dir / 'epoch_2.pth'),
              '--work-dir', str(tmp_path / 'test'), '--out', str(metrics_file),
              '--out-item', 'metrics'], cwd=tmp_path)
    metrics = json.loads(metrics_file.read_text())
    assert metrics['accuracy/top1'] == pytest.approx(val_top1['accuracy/top1'])

    out = train(write_config(tmp_path, digits, epochs=3), work_dir, '--resume')
    assert 'resumed epoch: 2' in out.stdout + out.stderr
    assert 'Epoch(train) [3]' in out.stdout + out.stderr
    assert 'Epoch(train) [1]' not in out.stdout + out.stderr
    assert (work_dir / 'epoch_3.pth').is_file()


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(digits: Path, tmp_path: Path) -> None:
    """A run SIGKILLed mid-epoch 2 and resumed ends with the uninterrupted run's weights."""
    config = write_config(tmp_path, digits, epochs=3)
    train(config, tmp_path / 'straight')

    (tmp_path / 'sigkill_hook.py').write_text(SIGKILL_HOOK)
    doomed = write_config(tmp_path, digits, epochs=3, extra=(
        "custom_imports = dict(imports=['sigkill_hook'], allow_failed_imports=False)\n"
        'custom_hooks = [dict(type="SigkillHook", after_iter=10)]  # 2nd of epoch 2 (8 per epoch)'),
        name='doomed')
    killed = train(doomed, tmp_path / 'resumed', env={'PYTHONPATH': str(tmp_path)}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / 'resumed' / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'resumed' / 'epoch_2.pth').exists()

    out = train(config, tmp_path / 'resumed', '--resume')
    assert 'resumed epoch: 1' in out.stdout + out.stderr
    assert_same_weights(tmp_path / 'straight' / 'epoch_3.pth', tmp_path / 'resumed' / 'epoch_3.pth')


@pytest.mark.slow
def test_dist_train_two_cpu_processes(digits: Path, tmp_path: Path) -> None:
    """tools/dist_train.sh runs 2 processes with gloo, then dist_test.sh tests the result."""
    env = {'PYTHON': sys.executable, 'PORT': str(free_port())}
    config = write_config(tmp_path, digits, epochs=1)
    work_dir = tmp_path / 'work'
    run_tool(['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2',
              '--work-dir', str(work_dir)], cwd=tmp_path, env=env)
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert "backend='gloo'" in log
    assert (work_dir / 'epoch_1.pth').is_file()

    env['PORT'] = str(free_port())
    out = run_tool(['bash', str(ROOT / 'tools' / 'dist_test.sh'), str(config),
                    str(work_dir / 'epoch_1.pth'), '2', '--work-dir', str(tmp_path / 'test')],
                   cwd=tmp_path, env=env)
    assert 'Epoch(test)' in out.stdout + out.stderr


@pytest.mark.parametrize('options, error, match', [
    (['trian_cfg.max_epochs=1'], ValueError,
     "unknown top-level config key 'trian_cfg' \\(did you mean 'train_cfg'\\?\\)"),
    (['model.head.num_classes=5'], ValueError, 'model.head.num_classes=5 but train_dataloader'),
    (['model.backbone.type=ResNet_CIFARX'], InputError, 'cannot be built: KeyError: ResNet_CIFARX is not in the'),
    (['model.backbone.depht=18'], InputError, 'cannot be built: TypeError: .*depht'),
    (['train_dataloader.dataset.data_root=no/such/folder'], FileNotFoundError,
     "train_dataloader.dataset.data_root='no/such/folder' is not a folder"),
])
def test_bad_input_fails_before_training(digits: Path, tmp_path: Path, options: List[str],
                                         error: type, match: str) -> None:
    """Mistakes raise a clear error, and no training step (or checkpoint) happens."""
    work_dir = tmp_path / 'work'
    # A config name of its own: mmengine reuses the visualizer of an earlier Runner of the same name and second.
    with pytest.raises(error, match=match):
        load_tool('train').main([str(write_config(tmp_path, digits, name=tmp_path.name)), '--work-dir', str(work_dir),
                                 '--cfg-options', *options])
    assert not list(work_dir.glob('*.pth'))


def test_test_tool_rejects_missing_checkpoint(digits: Path, tmp_path: Path) -> None:
    """tools/test.py names a missing checkpoint before building anything."""
    with pytest.raises(FileNotFoundError, match='no_such.pth'):
        load_tool('test').main([str(write_config(tmp_path, digits)), str(tmp_path / 'no_such.pth')])


def test_amp_without_gpu_is_a_clear_error(digits: Path, tmp_path: Path) -> None:
    """--amp on a CPU-only machine says why instead of failing inside mmengine."""
    if torch.cuda.is_available():
        pytest.skip('a GPU is available')
    with pytest.raises(ValueError, match='--amp needs a CUDA'):
        load_tool('train').main([str(write_config(tmp_path, digits)), '--amp'])


@pytest.mark.slow
def test_cifar10_config_trains_on_cifar10_layout(digits: Path, tmp_path: Path) -> None:
    """The CIFAR-10 config runs end to end on the digits written as CIFAR-10 batches."""
    import se_plugins.data.cifar10_layout  # noqa: F401  registers CIFAR10Layout

    config = ROOT / 'configs' / 'datasets' / 'se-resnet18_8xb16_cifar10.py'
    options = ['model.backbone.stem_channels=16', 'model.backbone.base_channels=16',
               'model.head.in_channels=128', 'train_cfg.max_epochs=1',
               'default_hooks.checkpoint.interval=1']
    for split, count in (('train', 32), ('val', 16)):
        options += [f'{split}_dataloader.dataset.type=CIFAR10Layout',
                    f'{split}_dataloader.dataset.data_root={digits}',
                    f'{split}_dataloader.dataset.indices={count}']
    load_tool('train').main([str(config), '--work-dir', str(tmp_path / 'work'),
                             '--cfg-options', *options])
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_cifar10_config_without_data_names_the_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock CIFAR-10 config never downloads: a missing folder is named at once."""
    monkeypatch.chdir(tmp_path)
    config = ROOT / 'configs' / 'datasets' / 'se-resnet18_8xb16_cifar10.py'
    with pytest.raises(FileNotFoundError, match="data_root='data/cifar10'"):
        load_tool('train').main([str(config), '--work-dir', str(tmp_path / 'work')])


def test_checkpoint_survives_sigkill_mid_write(tmp_path: Path) -> None:
    """A process killed while writing a checkpoint leaves the previous file whole."""
    import mmengine.runner.runner

    from se_plugins.engine import save_checkpoint_atomic, use_atomic_checkpoint_writes

    use_atomic_checkpoint_writes()
    assert mmengine.runner.runner.save_checkpoint is save_checkpoint_atomic
    target = tmp_path / 'epoch_1.pth'
    save_checkpoint_atomic({'state_dict': {'w': torch.zeros(3)}}, str(target))

    def die_mid_write() -> None:  # runs in a forked child
        def half_save(obj: object, f) -> None:
            f.write(b'PK\x03\x04 half a zip')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = half_save
        save_checkpoint_atomic({'state_dict': {'w': torch.ones(3)}}, str(target))

    child = multiprocessing.get_context('fork').Process(target=die_mid_write)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert torch.equal(state_dict(target)['w'], torch.zeros(3))


def test_only_history_buffer_methods_pass_the_getattr_stand_in() -> None:
    """The ``builtins.getattr`` allowed in checkpoints reaches only HistoryBuffer's methods."""
    from mmengine.logging import HistoryBuffer

    from se_plugins.engine.compat import history_buffer_method

    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, '_statistics_methods'),
                        (os, 'system')):
        with pytest.raises(pickle.UnpicklingError):
            history_buffer_method(owner, name)
