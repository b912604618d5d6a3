"""se_cfg validation, shared by the timm and MMPretrain adapters."""
import pytest

from se_plugins import SEConfig, SELayer


def test_defaults_build_the_paper_layer_in_every_stage():
    config = SEConfig.build({}, owner='Net', num_stages=4)
    layers = [config.make_layer(stage, 256) for stage in range(4)]
    assert all(isinstance(layer, SELayer) and layer.squeeze_channels == 16 for layer in layers)


def test_per_stage_ratio_and_stages():
    config = SEConfig.build(dict(ratio=[4, 8, 16, 32], stages=(False, True, True, False)), owner='Net', num_stages=4)
    widths = [None if (layer := config.make_layer(stage, 512)) is None else layer.squeeze_channels
              for stage in range(4)]
    assert widths == [None, 64, 32, None]


@pytest.mark.parametrize('se_cfg, error, words', [
    (dict(ratoi=8), ValueError, ["'ratoi'", 'allowed', 'ratio']),
    (dict(ratio=(4, 8)), ValueError, ["'ratio'", 'one entry per stage (4)']),
    (dict(stages=(True, 1, True, True)), TypeError, ["'stages'", 'bools']),
    (dict(stages=(True,)), ValueError, ["'stages'", '(4)']),
    (dict(ratio=0), ValueError, ["se_cfg 'ratio'", 'positive']),
    (dict(squeeze='sum'), ValueError, ["se_cfg 'squeeze'", "'avg', 'max', 'avgmax'"]),
    (dict(excitation='mlp'), ValueError, ["se_cfg 'excitation'"]),
    (dict(act_cfg=dict(type='Nope')), ValueError, ['se_cfg act_cfg[0]', "'Nope'"]),
    (dict(position='everywhere'), ValueError, ["se_cfg 'position'", 'standard']),
    (['ratio', 8], TypeError, ['se_cfg must be a dict', 'list']),
])
def test_bad_se_cfg_names_owner_and_key(se_cfg, error, words):
    with pytest.raises(error) as info:
        SEConfig.build(se_cfg, owner='ResNetV1d', num_stages=4)
    assert str(info.value).startswith('ResNetV1d: ')
    for word in words:
        assert word in str(info.value)
