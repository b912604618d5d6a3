"""tools/analysis/benchmark.py: its timing bookkeeping, and one tiny run of the whole table."""
import os
import subprocess
import sys

import pytest

from scripts import ROOT, load_script

benchmark = load_script('tools/analysis/benchmark.py')


def test_rounds_rotate_and_ratios_pair_rounds():
    order = []
    steps = {name: (lambda name=name: order.append(name)) for name in 'abc'}
    times = benchmark.time_interleaved(steps, repeats=3, warmup=1, cuda=False)
    assert ''.join(order) == 'abc' 'bca' 'cab' 'abc'
    assert [len(ts) for ts in times.values()] == [3, 3, 3]
    # round by round 2/1, 2/1, 9/3: the paired median is 2.0; the ratio of medians would be 1.0
    assert benchmark.paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0


def test_tiny_run_prints_the_table():
    pytest.importorskip('mmpretrain')
    result = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'analysis' / 'benchmark.py'), '--img-size', '64', '--batch-size', '2',
         '--repeats', '2', '--warmup', '0', '--threads', '1'],
        capture_output=True, text=True, timeout=300, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if line.startswith('| ') and cells[0] in benchmark.DEFAULT_MODELS:
            rows.setdefault(cells[0], []).append(cells)
    assert sorted(rows) == sorted(benchmark.DEFAULT_MODELS)
    assert all(len(r) == 2 for r in rows.values())  # infer and train
    saved = {name: float(r[0][-1].split('(')[1].rstrip('x)')) for name, r in rows.items()}
    assert saved['resnet50'] == saved['mm:ResNet-50'] == 1.0
    assert saved['se_resnet50_plugin'] < 1.02 and saved['mm:ResNet-50+se'] < 1.02
    assert saved['seresnet50'] > 1.2 and saved['mm:SEResNet-50'] > 1.2
    assert rows['resnet50'][0][4] == '1.000'  # each run against itself, round by round
