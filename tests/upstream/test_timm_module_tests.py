"""timm's model tests that pick their models by timm module name, run on our ``se_*_plugin`` models.

``test_model_forward_intermediates``, ``test_model_forward_intermediates_features`` and
``test_prune_intermediate_layers_contract`` in timm's ``tests/test_models.py`` are parametrized with
``list_models(module=FEAT_INTER_FILTERS)``: timm module names such as ``resnet`` or ``inception_v3``.
Our models are registered from ``se_plugins.timm.se_resnet`` / ``se_inception``, so ``-k plugin``
never selects them there. This file calls the same test functions with our model names.

It needs the unpacked timm sdist tests (``TIMM_TESTS_DIR``), which ``tests/upstream/run.sh`` sets;
in the project's plain ``pytest`` run the module is skipped.
"""
import fnmatch
import importlib.util
import os

import pytest

TESTS_DIR = os.environ.get('TIMM_TESTS_DIR')
if not TESTS_DIR:
    pytest.skip('timm upstream tests not available: TIMM_TESTS_DIR is unset '
                '(run `bash tests/upstream/run.sh`)', allow_module_level=True)

import timm  # noqa: E402

import se_plugins  # noqa: E402,F401  (registers the se_*_plugin models)


def _load_upstream(tests_dir: str):
    """Import timm's ``test_models.py`` from ``tests_dir`` under a private module name."""
    path = os.path.join(tests_dir, 'test_models.py')
    spec = importlib.util.spec_from_file_location('_timm_upstream_test_models', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


upstream = _load_upstream(TESTS_DIR)


def _plugin_models() -> list:
    """Our registered models: ``*_plugin`` names whose timm entrypoint lives in ``se_plugins``."""
    names = [
        name for name in timm.list_models('*_plugin')
        if timm.models.model_entrypoint(name).__module__.startswith('se_plugins.')
    ]
    # Same exclusions as upstream applies on top of its module filter, and those of timm's memory-limited CI
    # runners for the two largest RegNetYs (see tests/upstream/run.sh).
    excluded = [*upstream.EXCLUDE_FILTERS, '*regnety_1280*', '*regnety_2560*']
    return [n for n in names if not any(fnmatch.fnmatch(n, f) for f in excluded)]


MODELS = _plugin_models()


def test_plugin_models_found():
    assert MODELS, "no se_*_plugin models registered from se_plugins"


@pytest.mark.parametrize('model_name', MODELS)
def test_model_forward_intermediates(model_name):
    upstream.test_model_forward_intermediates(model_name, batch_size=1)


@pytest.mark.parametrize('model_name', MODELS)
def test_model_forward_intermediates_features(model_name):
    upstream.test_model_forward_intermediates_features(model_name, batch_size=1)


@pytest.mark.parametrize('model_name', MODELS)
def test_prune_intermediate_layers_contract(model_name):
    upstream.test_prune_intermediate_layers_contract(model_name)
