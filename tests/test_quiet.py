"""The tools start quietly: no warning a user of SE cannot act on, and one line naming the extra to install
when a package is missing (exit status 2, no traceback)."""
from __future__ import annotations

import importlib.abc
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

from se_plugins.extras import EXTRAS, required

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ['tools/train.py', 'tools/test.py', 'tools/prepare_digits.py', 'tools/train_timm.py',
         'tools/convert_checkpoint.py', 'tools/analysis/ablate.py', 'tools/analysis/benchmark.py',
         'tools/analysis/complexity.py', 'tools/analysis/excitation.py']
MMCV_LITE_WARNING = 'Fail to import ``MultiScaleDeformableAttention``'


def python(code: str) -> subprocess.CompletedProcess:
    """``python -W default -c code`` in the repository root: every warning shown, once."""
    return subprocess.run([sys.executable, '-W', 'default', '-c', code], cwd=ROOT, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}, timeout=300)


@pytest.mark.parametrize('code', [
    'import mmpretrain, se_plugins; import se_plugins.mmpretrain',  # SE support added at once
    'import se_plugins, mmpretrain.models',  # added right after the program imports mmpretrain
])
def test_importing_se_with_mmpretrain_prints_nothing(code):
    pytest.importorskip('mmpretrain')
    result = python(code + f'\nimport warnings; warnings.warn({MMCV_LITE_WARNING!r} + " (not mmcv)", UserWarning)')
    assert result.returncode == 0, result.stderr[-2000:]
    # Only our own warning: the filter is gone after the import, so the same words from elsewhere still show.
    assert result.stderr == f'<string>:2: UserWarning: {MMCV_LITE_WARNING} (not mmcv)\n'


def test_every_tool_starts_quietly():
    """Each tool's --help, in one process (each module is imported, and could warn, once)."""
    pytest.importorskip('mmpretrain')
    pytest.importorskip('timm')
    code = f'''
import contextlib, io, runpy, sys
for tool in {TOOLS!r}:
    print('==', tool, file=sys.stderr, flush=True)
    sys.argv = [tool, '--help']
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        runpy.run_path(tool, run_name='__main__')
'''
    result = python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.splitlines() == [f'== {tool}' for tool in TOOLS]


class _Missing(importlib.abc.MetaPathFinder):
    """Makes ``packages`` look uninstalled."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = set(packages)

    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in self.packages:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None


def run_without(monkeypatch, packages: Sequence[str], argv: List[str], forget: Sequence[str] = ()) -> int:
    """Run the tool ``argv[0]`` as ``__main__`` with ``packages`` (and the modules ``forget``) not importable."""
    for name in list(sys.modules):
        if name.partition('.')[0] in packages or name in forget:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, 'meta_path', [_Missing(packages), *sys.meta_path])
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(ROOT / argv[0]), run_name='__main__')
    return info.value.code


@pytest.mark.parametrize('packages, argv, forget, line', [
    (['fvcore'], ['tools/analysis/complexity.py', 'resnet18'], [],
     'complexity.py needs fvcore: pip install -e ".[analysis]"'),
    (['matplotlib'], ['tools/analysis/excitation.py', 'MODEL', 'CKPT', '--data', 'DIR', '--out-dir', 'OUT'],
     ['se_plugins.analysis.plots'], 'excitation.py needs matplotlib: pip install -e ".[analysis]"'),
    (['timm'], ['tools/analysis/benchmark.py', '--models', 'resnet18'], [],
     'benchmark.py needs timm: pip install -e ".[analysis]"'),
    (['timm'], ['tools/analysis/ablate.py', 'se_resnet18_plugin', 'CKPT', '--data', 'DIR'], [],
     'ablate.py needs timm: pip install -e ".[analysis]"'),
    (['mmengine'], ['tools/train.py', 'CONFIG.py'], ['se_plugins.engine', 'se_plugins.engine.compat'],
     'train.py needs mmengine: pip install -e ".[mmpretrain]"'),
    (['mmengine'], ['tools/test.py', 'CONFIG.py', 'CKPT'], ['se_plugins.engine', 'se_plugins.engine.compat'],
     'test.py needs mmengine: pip install -e ".[mmpretrain]"'),
    (['timm'], ['tools/train_timm.py', '--help'], [], 'train_timm.py needs timm: pip install -e ".[timm]"'),
    (['sklearn'], ['tools/prepare_digits.py', '--out', 'OUT'], [],
     'prepare_digits.py needs sklearn: pip install -e ".[demo]"'),
])
def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path, packages, argv, forget, line):
    monkeypatch.chdir(tmp_path)  # nothing is written into the repository
    argv = [argv[0]] + [str(tmp_path / a) if a in ('OUT', 'DIR', 'CKPT') else a for a in argv[1:]]
    code = run_without(monkeypatch, packages, argv, forget)
    assert (code, capsys.readouterr().err) == (2, line + '\n')


def test_a_module_missing_inside_an_installed_package_is_not_hidden():
    with pytest.raises(ModuleNotFoundError, match='no_such_module'), required('tool.py'):
        import json.no_such_module  # noqa: F401


def test_every_extra_named_exists_in_pyproject():
    text = (ROOT / 'pyproject.toml').read_text()
    assert all(f'\n{extra} = [' in text for extra in set(EXTRAS.values()))
