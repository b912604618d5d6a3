"""The demo's pinned kernels (tools/demo.sh) are code paths every x86-64 CPU runs alike.

Capped at SSE4.1, oneDNN runs the demo's convolutions with its ``jit:sse41`` forward kernels and its gemm-based
backward (``x64:gemm:jit``), whose blocking and thread split are constants of the ISA and the shapes. Its
gemm-based *forward* convolution is not: it picks its input-channel blocks, and so the order of its sums, from
the size of the CPU's L2 cache. This test fails if any convolution of the demo's two models, at the demo's batch
shapes, takes another implementation than those (after a change of PyTorch, oneDNN, the models or the pins).
"""
from __future__ import annotations

import collections
import os
import platform
import re
import subprocess
import sys

import pytest

from scripts import ROOT

pytest.importorskip('mmpretrain')
pytest.importorskip('timm')

# One training step (the demo's batch and the last, partial one) and the validation batches of both demo models.
STEPS = '''
import torch, timm, yaml, se_plugins
from mmengine.config import Config
from mmpretrain.registry import MODELS
import mmpretrain.models

mm = MODELS.build(Config.fromfile('configs/demo/se-resnet18_1xb32_digits.py').model).backbone
recipe = yaml.safe_load(open('configs/timm/se_resnet18_digits.yaml'))
tm = timm.create_model(recipe['model'], num_classes=recipe['num_classes'], **recipe.get('model_kwargs', {}))
size = recipe['img_size']
for model, train_batches, val_batches in ((mm, (32, 1437 % 32), (120,)),
                                          (tm, (recipe['batch_size'],), (recipe['batch_size'], 360 % 32))):
    for batch in train_batches:
        model.train()
        out = model(torch.randn(batch, 3, size, size))
        (out[-1] if isinstance(out, tuple) else out).sum().backward()
    model.eval()
    with torch.no_grad():
        for batch in val_batches:
            model(torch.randn(batch, 3, size, size))
'''
EXPECTED = {('convolution', 'jit:sse41', 'forward_training'), ('convolution', 'x64:gemm:jit', 'backward_data'),
            ('convolution', 'x64:gemm:jit', 'backward_weights')}


def demo_environment() -> dict:
    """The variables tools/demo.sh exports to pin the kernels."""
    line = re.search(r'^export (OMP_NUM_THREADS=.*)$', (ROOT / 'tools' / 'demo.sh').read_text(), re.M).group(1)
    return dict(item.split('=', 1) for item in line.split())


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ('x86_64', 'amd64'), reason='the pins are for x86-64 CPUs')
def test_the_demos_convolutions_take_oneDNNs_cache_independent_kernels():
    pins = demo_environment()
    assert set(pins) == {'OMP_NUM_THREADS', 'ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_CBWR'}
    env = dict(os.environ, **pins, ONEDNN_VERBOSE='1', PYTHONWARNINGS='ignore')
    done = subprocess.run([sys.executable, '-c', STEPS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line.split(',') for line in done.stdout.splitlines() if line.startswith('onednn_verbose,')]
    info = {','.join(fields[3:]) for fields in lines if fields[2] == 'info'}
    assert 'cpu,isa:Intel SSE4.1' in info and 'cpu,runtime:OpenMP,nthr:2' in info, info
    used = collections.Counter(tuple(fields[5:8]) for fields in lines if fields[2:4] == ['primitive', 'exec'])
    convolutions = {kind for kind in used if kind[0] == 'convolution'}
    assert convolutions == EXPECTED, used
    assert {kind[0] for kind in used} == {'convolution', 'reorder'}, used  # reorders copy, they do not add
    assert sum(used[kind] for kind in EXPECTED) >= 3 * 2 * 20  # both ResNet-18s' 20 convolutions, each way
