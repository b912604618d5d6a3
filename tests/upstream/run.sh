#!/usr/bin/env bash
# The frameworks' own test suites, run on our models (see ../shared/upstream/README.md):
#   1. timm: tests/test_models.py from the sdist of the installed timm version, `-k plugin`.
#   2. timm: tests/upstream/test_timm_module_tests.py, the test_models.py tests that pick models by
#      timm module name (so `-k plugin` never reaches ours), called with our model names.
#   3. MMPretrain 1.2.0 backbone tests, once as they are and once after `import se_plugins`:
#      every test's outcome must be the same.
# Usage, from the repo root: bash tests/upstream/run.sh [PYTHON]   (PYTHON: .venv/bin/python)
# Env: SE_UPSTREAM_DIR (default ../shared/upstream); UPSTREAM_XDIST: pytest-xdist workers for the timm
# parts (default 2 when pytest-xdist is installed, 0 = serial), each worker with OMP_NUM_THREADS=1.
# Downloads and scratch files go to .cache/upstream/ (the timm sdist is downloaded once).
set -euo pipefail

PY=${1:-.venv/bin/python}
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
UPSTREAM=$(cd "${SE_UPSTREAM_DIR:-$ROOT/../shared/upstream}" && pwd)
CACHE=$ROOT/.cache/upstream
REPORTS=$CACHE/reports
mkdir -p "$CACHE" "$REPORTS"
rm -f "$REPORTS"/*.xml "$REPORTS"/*.log

export HF_HUB_OFFLINE=1           # no hub access in CI; hub-download tests are left out or fail alike
export TORCH_HOME=$CACHE/torch_home
export PYTHONDONTWRITEBYTECODE=1  # nothing written next to the copied / shared test files

SECONDS=0
stamp() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
# Run pytest, keep going on failure; the outcome is judged from the junit XML afterwards.
run_pytest() { "$PY" -m pytest -p no:cacheprovider --disable-warnings "$@" || echo "(pytest exit code $?)"; }

# ---------------------------------------------------------------- 1. timm's test_models.py -k plugin
TIMM_VERSION=$("$PY" -c 'import timm; print(timm.__version__)')
SDIST=$CACHE/timm-$TIMM_VERSION.tar.gz
if [[ ! -f $SDIST ]]; then
    stamp "downloading timm==$TIMM_VERSION sdist"
    "$PY" -m pip download -q --no-binary :all: --no-deps "timm==$TIMM_VERSION" -d "$CACHE"
fi
TIMM_SRC=$CACHE/timm-$TIMM_VERSION
rm -rf "$TIMM_SRC"
# Without the timm/ package: tests/ has an __init__.py, so pytest puts the sdist root on sys.path and
# `import timm` would load the sdist's sources instead of the installed timm under test.
tar -xzf "$SDIST" -C "$CACHE" --exclude="timm-$TIMM_VERSION/timm"
cat > "$TIMM_SRC/conftest.py" <<'EOF'
import os

import timm

import se_plugins  # noqa: F401  (registers the se_*_plugin models before test_models.py lists models)

assert not os.path.abspath(timm.__file__).startswith(os.path.dirname(os.path.abspath(__file__))), \
    f'testing the sdist copy of timm ({timm.__file__}), not the installed one'


def pytest_configure(config):
    if not config.pluginmanager.hasplugin('timeout'):  # timm marks tests with pytest-timeout's marker
        config.addinivalue_line('markers', 'timeout(seconds): pytest-timeout limit (plugin not installed)')
EOF

# Hub-download tests left out: test_model_load_pretrained and test_model_features_pretrained
# (parametrized with list_models(pretrained=True), which lists our pretrained tags such as
# se_resnet50_plugin.ra2_in1k, and call create_model(..., pretrained=True)). test_model_inference and
# test_radio_checkpoint_filter download too but never take our names, so `-k plugin` drops them.
# Also left out: test_model_forward_features on the two SE-Inception models. It exempts timm's Inception
# networks from its "feature reduction too small" check by name ('inception_v3*', 'inception_resnet_v2*':
# their unpadded convs shrink small inputs below input / reduction); ours are the same networks under
# other names, so the check fails on them as it would on timm's without the exemption. The same
# features_only models pass test_model_forward_intermediates_features (part 2).
TIMM_K='plugin and not test_model_load_pretrained and not test_model_features_pretrained'
TIMM_K+=' and not (test_model_forward_features and inception)'
# The two largest twins (se_regnety_1280/2560_plugin, 0.64 and 1.28 billion parameters) are left out as timm's
# own CI leaves out 'regnet*1280' and 'regnet*2560' on its memory-limited runners (GITHUB_ACTIONS in
# test_models.py); tests/test_timm_twins.py checks their every key, shape and parameter count.
TIMM_K+=' and not regnety_1280 and not regnety_2560'
# xdist pays on 2 cores (timm -k plugin, 107 tests, machine shared with other jobs): serial with torch's
# 2 threads 10m34s wall / 7m24s CPU; -n 2 with 2 threads each 12m13s / 9m41s; -n 2 with
# OMP_NUM_THREADS=1 6m21s / 4m00s. Models at batch 1-2 gain little from intra-op threads.
XDIST=()
if "$PY" -c 'import xdist' 2>/dev/null; then WORKERS=${UPSTREAM_XDIST:-2}; else WORKERS=0; fi
if [[ $WORKERS != 0 ]]; then XDIST=(-n "$WORKERS"); export OMP_NUM_THREADS=1; fi
stamp "timm $TIMM_VERSION: tests/test_models.py -k plugin"
# -c timm's own pyproject (its markers, no addopts) + --rootdir: neither our pyproject's addopts
# (--doctest-modules) nor any other config applies.
run_pytest "$TIMM_SRC/tests/test_models.py" -c "$TIMM_SRC/pyproject.toml" --rootdir "$TIMM_SRC" \
    -k "$TIMM_K" -q -rfE --tb=line --durations=20 "${XDIST[@]}" --junitxml="$REPORTS/timm_plugin.xml"
T_TIMM=$SECONDS

# ---------------------------------------------------------------- 2. timm's module-picked tests
stamp "timm $TIMM_VERSION: module-picked tests (tests/upstream/test_timm_module_tests.py)"
TIMM_TESTS_DIR=$TIMM_SRC/tests run_pytest tests/upstream/test_timm_module_tests.py "${XDIST[@]}" \
    -q -rfE --tb=line --durations=10 --junitxml="$REPORTS/timm_module.xml"
T_MODULE=$SECONDS

# ---------------------------------------------------------------- 3. MMPretrain backbone tests
stamp "MMPretrain backbone tests, without and with import se_plugins"
CKPT=$TORCH_HOME/hub/checkpoints/resnet50-0676ba61.pth  # what torchvision://resnet50 resolves to
if [[ ! -f $CKPT ]]; then
    mkdir -p "$(dirname "$CKPT")"
    "$PY" -c 'import sys, torch, torchvision; torch.manual_seed(0)
torch.save(torchvision.models.resnet50().state_dict(), sys.argv[1])' "$CKPT"
fi
MM_TESTS=$UPSTREAM/mmpretrain-1.2.0/tests/test_models/test_backbones
for variant in plain se; do
    dir=$CACHE/mmpretrain/$variant
    rm -rf "$dir" && mkdir -p "$dir/test_backbones"
    cp "$MM_TESTS"/test_*.py "$dir/test_backbones/"
    printf '[pytest]\n' > "$dir/pytest.ini"  # own rootdir/config in both runs: same node ids
    if [[ $variant == se ]]; then
        echo 'import se_plugins  # noqa: F401' > "$dir/conftest.py"
    fi
    # mmengine logs every init_weights to the terminal: keep the log, show its summary lines
    (cd "$dir" && run_pytest test_backbones -q -rfE --tb=line --junitxml="$REPORTS/mmpretrain_$variant.xml") \
        > "$REPORTS/mmpretrain_$variant.log" 2>&1
    echo "-- $variant (log: ${REPORTS#"$ROOT"/}/mmpretrain_$variant.log)"
    sed -n '/short test summary info/,$p' "$REPORTS/mmpretrain_$variant.log"
done
T_MM=$SECONDS

# ---------------------------------------------------------------- summary
echo "wall time: timm -k plugin ${T_TIMM}s, timm module-picked $((T_MODULE - T_TIMM))s," \
     "MMPretrain x2 $((T_MM - T_MODULE))s, total ${SECONDS}s"
RC=0
"$PY" - "$REPORTS" <<'EOF' || RC=$?
import os
import sys
import xml.etree.ElementTree as ET

reports = sys.argv[1]


def outcomes(name):
    """{test id: (outcome, first message line)} from a junit XML report; None if pytest wrote none."""
    path = os.path.join(reports, name + '.xml')
    if not os.path.exists(path):
        return None
    result = {}
    for case in ET.parse(path).iter('testcase'):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        marks = [child for child in case if child.tag in ('failure', 'error', 'skipped')]
        if not marks:
            result[test_id] = ('passed', '')
        else:
            outcome = {'failure': 'failed'}.get(marks[0].tag, marks[0].tag)
            result[test_id] = (outcome, (marks[0].get('message') or '').strip().split('\n')[0][:160])
    return result


def counts(result):
    if result is None:
        return 'NO REPORT (pytest did not run to the end)'
    tally = {}
    for outcome, _ in result.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return ', '.join(f'{n} {k}' for k, n in sorted(tally.items())) or 'no tests'


ok = True
print('\n==================== upstream summary ====================')
for name, title in [('timm_plugin', 'timm test_models.py -k plugin'),
                    ('timm_module', 'timm module-picked tests')]:
    result = outcomes(name)
    print(f'{title}: {counts(result)}')
    bad = sorted(t for t, (o, _) in (result or {}).items() if o in ('failed', 'error'))
    for test_id in bad:
        print(f'    {result[test_id][0].upper()} {test_id}: {result[test_id][1]}')
    ok &= bool(result) and not bad

plain, se = outcomes('mmpretrain_plain'), outcomes('mmpretrain_se')
print(f'MMPretrain backbones, as they are:     {counts(plain)}')
print(f'MMPretrain backbones, with se_plugins: {counts(se)}')
if plain is None or se is None:
    ok = False
else:
    absent = ('absent', '')
    diff = sorted(t for t in plain.keys() | se.keys() if plain.get(t, absent)[0] != se.get(t, absent)[0])
    for test_id in diff:
        (before, _), (after, why) = plain.get(test_id, absent), se.get(test_id, absent)
        print(f'    DIFFERS {test_id}: {before} -> {after} {why}')
    print(f'MMPretrain outcomes differ: {len(diff)}')
    ok &= not diff
print('upstream: OK' if ok else 'upstream: FAILED')
sys.exit(0 if ok else 1)
EOF
exit $RC
