"""timm adapter: every registered name builds, counts, extracts features and behaves like timm's ResNets."""
import argparse
import functools
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image

timm = pytest.importorskip('timm')
import se_plugins  # noqa: E402  (registers the models)
from se_plugins.timm import MODEL_NAMES, se_byobnet, se_regnet, se_resnet  # noqa: E402
from se_plugins.timm.run import main as run_main  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# name -> (timm equivalent, its parameter count, feature channels); a '+se' equivalent is
# timm's base model built with block_args=dict(attn_layer='se'), as timm has no SE model of it.
EXPECTED = {
    'se_resnet18_plugin': ('seresnet18', 11_779_624, (64, 64, 128, 256, 512)),
    'se_resnet26_plugin': ('resnet26+se', 17_395_976, (64, 256, 512, 1024, 2048)),
    'se_resnet34_plugin': ('seresnet34', 21_960_416, (64, 64, 128, 256, 512)),
    'se_resnet50_plugin': ('seresnet50', 28_088_024, (64, 256, 512, 1024, 2048)),
    'se_resnet50d_plugin': ('resnet50d+se', 28_107_256, (64, 256, 512, 1024, 2048)),
    'se_resnet50t_plugin': ('seresnet50t', 28_104_720, (64, 256, 512, 1024, 2048)),
    'se_resnetaa50d_plugin': ('seresnetaa50d', 28_107_256, (64, 256, 512, 1024, 2048)),
    'se_resnet101_plugin': ('seresnet101', 49_326_872, (64, 256, 512, 1024, 2048)),
    'se_resnet152_plugin': ('seresnet152', 66_821_848, (64, 256, 512, 1024, 2048)),
    'se_resnet152d_plugin': ('seresnet152d', 66_841_080, (64, 256, 512, 1024, 2048)),
    'se_resnet200d_plugin': ('seresnet200d', 71_855_096, (64, 256, 512, 1024, 2048)),
    'se_resnet269d_plugin': ('seresnet269d', 113_672_760, (64, 256, 512, 1024, 2048)),
    'se_resnext26d_32x4d_plugin': ('seresnext26d_32x4d', 16_809_512, (64, 256, 512, 1024, 2048)),
    'se_resnext26t_32x4d_plugin': ('seresnext26t_32x4d', 16_806_976, (64, 256, 512, 1024, 2048)),
    'se_resnext50_32x4d_plugin': ('seresnext50_32x4d', 27_559_896, (64, 256, 512, 1024, 2048)),
    'se_resnext101_32x4d_plugin': ('seresnext101_32x4d', 48_955_416, (64, 256, 512, 1024, 2048)),
    'se_resnext101_32x8d_plugin': ('seresnext101_32x8d', 93_569_048, (64, 256, 512, 1024, 2048)),
    'se_resnext101d_32x8d_plugin': ('seresnext101d_32x8d', 93_588_280, (64, 256, 512, 1024, 2048)),
    'se_resnext101_64x4d_plugin': ('seresnext101_64x4d', 88_232_984, (64, 256, 512, 1024, 2048)),
    'se_resnextaa101d_32x8d_plugin': ('seresnextaa101d_32x8d', 93_588_280, (64, 256, 512, 1024, 2048)),
    'se_resnextaa201d_32x8d_plugin': ('seresnextaa201d_32x8d', 149_394_904, (128, 256, 512, 1024, 2048)),
    'se_net154_plugin': ('senet154', 115_088_984, (128, 256, 512, 1024, 2048)),
    'se_wide_resnet50_2_plugin': ('wide_resnet50_2+se', 71_414_232, (64, 256, 512, 1024, 2048)),
}
RESNET_TWINS = {name: source for name, (source, _, _) in EXPECTED.items() if '+' not in source}
TWINS = {**RESNET_TWINS, **se_byobnet.TIMM_SOURCES, **se_regnet.TIMM_SOURCES}  # twin -> timm SE model
SIZE = {twin: count(timm.create_model(source, device='meta')) for twin, source in TWINS.items()}
DATA_FIELDS = ('input_size', 'test_input_size', 'pool_size', 'crop_pct', 'test_crop_pct', 'interpolation',
               'mean', 'std', 'num_classes', 'classifier')


def create_timm_equivalent(name: str, **kwargs) -> torch.nn.Module:
    base, _, se = name.partition('+')
    return timm.create_model(base, **(dict(block_args=dict(attn_layer='se')) if se else {}), **kwargs)


def blocks_of(model: torch.nn.Module) -> list:
    return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


@pytest.fixture(scope='module')
def resnet18():
    """One real se_resnet18_plugin (10 classes) for the API tests."""
    torch.manual_seed(0)
    return timm.create_model('se_resnet18_plugin', num_classes=10).eval()


def test_registers_exactly_the_issue_names():
    assert set(MODEL_NAMES) == set(EXPECTED) | set(TWINS) and len(MODEL_NAMES) == 11 + 12 + 2 + 17
    assert set(MODEL_NAMES) <= set(timm.list_models('*_plugin'))
    for module, names in ((se_resnet, EXPECTED), (se_byobnet, se_byobnet.TIMM_SOURCES),
                          (se_regnet, se_regnet.TIMM_SOURCES)):
        for name in names:
            assert timm.is_model(name) and timm.models.model_entrypoint(name).__module__ == module.__name__
            assert getattr(module, name) is timm.models.model_entrypoint(name)


def test_no_timm_name_is_shadowed():
    native = subprocess.run([sys.executable, '-c', 'import json, timm; print(json.dumps(timm.list_models()))'],
                            capture_output=True, text=True, check=True).stdout
    assert not set(json.loads(native)) & set(MODEL_NAMES)


@pytest.mark.parametrize('name', EXPECTED)
def test_model(name):
    """Built on the meta device (no memory, no init): structure, counts and shapes of every name."""
    equivalent, params, feature_channels = EXPECTED[name]
    model = timm.create_model(name, device='meta')
    # timm's own ResNet, our SELayer in every block's attn_layer slot, MMPretrain's keys
    assert type(model) is timm.models.resnet.ResNet
    blocks = blocks_of(model)
    assert all(isinstance(block.se, se_plugins.SELayer) for block in blocks)
    assert sum(isinstance(m, se_plugins.SELayer) for m in model.modules()) == len(blocks)
    assert 'layer1.0.se.conv1.conv.weight' in model.state_dict()
    assert tuple(model(torch.empty(2, 3, 64, 64, device='meta')).shape) == (2, 1000)
    # parameter count, against timm's equivalent
    assert count(model) == params == count(create_timm_equivalent(equivalent, device='meta'))
    # features_only: five taps at strides 2..32, the channels of timm's equivalent
    features = timm.create_model(name, features_only=True, device='meta')
    assert tuple(features.feature_info.channels()) == feature_channels
    assert features.feature_info.channels() == create_timm_equivalent(
        equivalent, features_only=True, device='meta').feature_info.channels()
    shapes = [tuple(f.shape) for f in features(torch.empty(1, 3, 64, 64, device='meta'))]
    assert shapes == [(1, c, 64 // r, 64 // r) for c, r in zip(feature_channels, (2, 4, 8, 16, 32))]


@pytest.mark.parametrize('name', [n if EXPECTED[n][1] < 30e6 else pytest.param(n, marks=pytest.mark.slow)
                                  for n in EXPECTED])
def test_real_forward(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
    assert out.std().item() > 0


@pytest.mark.parametrize('name', [*EXPECTED, *se_byobnet.TIMM_SOURCES, *se_regnet.TIMM_SOURCES])
def test_pretrained_tags_are_timms(name):
    """Every tag of timm's SE model is a tag of its twin, with timm's pretrained_cfg; the default tag too."""
    source = TWINS.get(name)
    ours = timm.models.get_arch_pretrained_cfgs(name)
    if source is None:  # no timm SE model: the data config of timm's untrained ResNets, no weights
        assert list(ours) == [f'{name}.untrained']
        reference = timm.models.get_pretrained_cfg('seresnet18.untrained').to_dict()
        assert {k: ours[f'{name}.untrained'].to_dict().get(k) for k in DATA_FIELDS} == {
            k: reference.get(k) for k in DATA_FIELDS}
        return
    theirs = timm.models.get_arch_pretrained_cfgs(source)
    assert [t.partition('.')[2] for t in ours] == [t.partition('.')[2] for t in theirs]
    for (our_tag, cfg), their_cfg in zip(ours.items(), theirs.values()):
        assert {**cfg.to_dict(), 'architecture': source, 'tag': None} == {**their_cfg.to_dict(), 'tag': None}, our_tag
    assert timm.models.get_pretrained_cfg(name).tag == timm.models.get_pretrained_cfg(source).tag
    listed = set(timm.list_models(f'{name}*', pretrained=True))
    assert listed == {t for t, cfg in ours.items() if cfg.has_weights}
    assert {t.replace(name, source) for t in listed} == set(timm.list_models(f'{source}.*', pretrained=True))


def test_every_timm_tag_with_weights_has_a_twin_tag():
    tags = timm.list_models('se_*_plugin', pretrained=True)
    assert len([t for t in tags if t.split('.')[0] in RESNET_TWINS]) == 20
    assert len([t for t in tags if t.split('.')[0] in se_byobnet.TIMM_SOURCES]) == 2
    assert len([t for t in tags if t.split('.')[0] in se_regnet.TIMM_SOURCES]) == 42
    theirs = timm.list_models([f'{s}.*' for s in TWINS.values()], pretrained=True)
    assert len(tags) == len(set(tags)) == 64 == len(theirs)
    assert {'se_resnextaa201d_32x8d_plugin.sw_in12k_ft_in1k_384', 'se_net154_plugin.gluon_in1k',
            'se_resnet33ts_plugin.ra2_in1k', 'se_regnety_160_plugin.swag_ft_in1k', 'se_regnety_2560_plugin.seer_ft_in1k'
            } <= set(tags)


def randomize(model: torch.nn.Module) -> None:
    """BatchNorm affine far from its init (timm zero-inits each block's last gamma, which would hide
    SE), SE biases non-zero, and running statistics those of a random batch: random, yet on the
    scale of the activations, so that a 269-layer network in eval mode does not blow up."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.2)
                m.momentum = 1.0  # running statistics := those of the next batch
            elif isinstance(m, (timm.layers.SEModule, se_plugins.SELayer)):
                for p in m.parameters():
                    p.normal_(0, 0.2) if p.dim() == 1 else None
        model.train()(torch.randn(2, 3, 64, 64))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1


# Outputs for every twin up to 300M parameters (regnety_1280/2560, 0.64 and 1.28 billion, are too large for
# two copies in float64 here; test_twin_structure checks their every key and shape).
@pytest.mark.parametrize('name', [n if SIZE[n] < 30e6 else pytest.param(n, marks=pytest.mark.slow)
                                  for n in TWINS if SIZE[n] < 300e6])
def test_timm_weights_load_by_tag_and_compute_the_same_in_float64(name, tmp_path):
    """timm's SE model, saved to a file, loads strictly through the twin's default tag: same outputs and
    same BatchNorm updates, eval and train, float64."""
    source = TWINS[name]
    torch.manual_seed(0)
    theirs = timm.create_model(source)
    randomize(theirs)
    path = tmp_path / 'theirs.pth'
    torch.save(theirs.state_dict(), path)
    ours = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    ours.double(), theirs.double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    for train in (False, True):
        ours.train(train), theirs.train(train)
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        # relative: float64 rounding (pooling and 1x1-conv summation order) grows through up to 269 layers
        assert (a - b).abs().max().item() < 1e-8 * b.abs().max().item() and a.std().item() > 1e-3
    running = [{n: b for n, b in m.named_buffers() if 'running' in n} for m in (ours, theirs)]
    torch.testing.assert_close(*running, rtol=1e-10, atol=1e-12)


def test_squeeze_widths_match_timm_seresnet50():
    ours = timm.create_model('se_resnet50_plugin', device='meta')
    theirs = timm.create_model('seresnet50', device='meta')
    for stage, width in zip(range(1, 5), (16, 32, 64, 128)):
        assert getattr(ours, f'layer{stage}')[0].se.squeeze_channels == width
        assert getattr(theirs, f'layer{stage}')[0].se.fc1.out_channels == width


def test_same_function_as_timm_seresnet18_after_key_rename():
    torch.manual_seed(0)
    theirs = timm.create_model('seresnet18', num_classes=10).eval()
    ours = timm.create_model('se_resnet18_plugin', num_classes=10).eval()
    rename = {'.se.fc1.': '.se.conv1.conv.', '.se.fc2.': '.se.conv2.conv.'}
    state = {}
    for key, value in theirs.state_dict().items():
        for old, new in rename.items():
            key = key.replace(old, new)
        state[key] = value
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() < 1e-5


def test_data_config_and_transforms():
    model = timm.create_model('se_resnet50d_plugin', device='meta')
    config = timm.data.resolve_data_config({}, model=model)
    assert config == dict(input_size=(3, 224, 224), interpolation='bicubic', mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225), crop_pct=0.875, crop_mode='center')
    assert timm.data.resolve_data_config({}, model=model, use_test_size=True)['input_size'] == (3, 288, 288)
    image = Image.new('RGB', (300, 260))
    assert tuple(timm.data.create_transform(**config)(image).shape) == (3, 224, 224)
    assert tuple(timm.data.create_transform(**config, is_training=True)(image).shape) == (3, 224, 224)


def test_se_cfg_keyword():
    model = timm.create_model('se_resnet50_plugin', device='meta', se_cfg=dict(
        ratio=8, excitation='linear', act_cfg=(dict(type='ReLU'), dict(type='HSigmoid'))))
    se = model.layer1[0].se
    assert (se.squeeze_channels, se.excitation, type(se.fc2.activate).__name__) == (32, 'linear', 'HSigmoid')
    assert 'layer1.0.se.fc1.weight' in model.state_dict()
    # ratio 8 doubles each squeeze width w = C/16: each block gains 2*C*w weights and w biases
    extra = sum(n * (2 * c * (c // 16) + c // 16) for c, n in {256: 3, 512: 4, 1024: 6, 2048: 3}.items())
    timm_ratio8 = timm.create_model('resnet50', device='meta', block_args=dict(
        attn_layer=functools.partial(timm.layers.SEModule, rd_ratio=1 / 8)))
    assert count(model) == 28_088_024 + extra == count(timm_ratio8) == 30_603_912


def test_se_cfg_per_stage_ratio_and_stages():
    model = timm.create_model('se_resnet50_plugin', device='meta',
                              se_cfg=dict(ratio=(4, 8, 16, 32), stages=(False, True, True, True)))
    assert model.layer1[0].se is None and model.layer1[2].se is None
    assert [getattr(model, f'layer{i}')[0].se.squeeze_channels for i in (2, 3, 4)] == [64, 64, 64]
    off = timm.create_model('se_resnet18_plugin', device='meta', se_cfg=dict(stages=(False,) * 4))
    assert count(off) == count(timm.create_model('resnet18', device='meta')) == 11_689_512
    with torch.no_grad():  # a block without SE still runs
        partial = timm.create_model('se_resnet18_plugin', num_classes=2, se_cfg=dict(stages=(True, False, False, True)))
        assert partial.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2)


@pytest.mark.parametrize('se_cfg, error, words', [
    (dict(ratios=8), ValueError, ["'ratios'", 'se_resnet50_plugin', 'allowed']),
    (dict(ratio=0), ValueError, ["'ratio'", '0']),
    (dict(squeeze='mean'), ValueError, ["'squeeze'", "'mean'", "'avgmax'"]),
    (dict(excitation='mlp'), ValueError, ["'excitation'", "'linear'"]),
    (dict(stages=(True, False)), ValueError, ["'stages'", '4']),
    ('ratio=8', TypeError, ['se_cfg must be a dict']),
])
def test_bad_se_cfg_names_the_key(se_cfg, error, words):
    with pytest.raises(error) as info:
        timm.create_model('se_resnet50_plugin', device='meta', se_cfg=se_cfg)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_block_args_attn_layer_is_refused():
    with pytest.raises(ValueError, match=r"block_args\['attn_layer'\].*'eca'.*se_cfg"):
        timm.create_model('se_resnet50_plugin', device='meta', block_args=dict(attn_layer='eca'))


def test_no_weights_yet():
    with pytest.raises(RuntimeError, match='No pretrained weights exist for se_resnet18_plugin'):
        timm.create_model('se_resnet18_plugin', pretrained=True)


def test_timm_model_api(resnet18):
    model = resnet18
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 512, 2, 2)
        assert model.forward_head(features, pre_logits=True).shape == (2, 512)
        assert (model.forward_head(features) - model(x)).abs().max().item() == 0.0
    assert model.get_classifier() is model.fc and model.num_classes == 10 and model.num_features == 512

    fresh = timm.create_model('se_resnet18_plugin', in_chans=1, num_classes=0).eval()
    assert fresh.conv1.in_channels == 1 and fresh(torch.randn(1, 1, 32, 32)).shape == (1, 512)
    fresh.reset_classifier(7)
    assert fresh(torch.randn(1, 1, 32, 32)).shape == (1, 7)

    features = timm.create_model('se_resnet18_plugin', features_only=True, out_indices=(2, 4)).eval()
    assert [tuple(f.shape) for f in features(x)] == [(2, 128, 8, 8), (2, 512, 2, 2)]


def test_drop_path_rate():
    blocks = blocks_of(timm.create_model('se_resnet18_plugin', drop_path_rate=0.1, device='meta'))
    assert blocks[0].drop_path is None
    assert [block.drop_path.drop_prob for block in blocks[1:]] == pytest.approx([0.1 * i / 7 for i in range(1, 8)])


@pytest.mark.parametrize('name', ['se_resnet18_plugin', 'se_regnety_002_plugin', 'se_resnet33ts_plugin'])
def test_grad_checkpointing_gives_the_same_gradients(name):
    """Every SE parameter (ResNet ``se``, RegNet ``se``, ByobNet ``attn``) gets the same gradient."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, zero_init_last=False)  # SE sees non-zero input
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        model(x).sum().backward()
        grads.append([p.grad.clone() for n, p in model.named_parameters() if '.se.' in n or '.attn.' in n])
    if name == 'se_resnet18_plugin':
        assert model.grad_checkpointing and model.layer1[0].se.conv1.conv.weight.grad.abs().sum() > 0
    assert grads[0] and all((a - b).abs().max() < 1e-6 and a.abs().sum() > 0 for a, b in zip(*grads))


def test_se_cfg_through_timm_cli_model_kwargs():
    """timm's scripts pass ``--model-kwargs k=v`` (ParseKwargs, ast.literal_eval) to create_model."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=timm.utils.ParseKwargs)
    args = parser.parse_args(['--model-kwargs', "se_cfg={'ratio': 8, 'stages': [False, True, True, True]}"])
    model = timm.create_model('se_resnet50_plugin', device='meta', **args.model_kwargs)
    assert model.layer1[0].se is None and model.layer2[0].se.squeeze_channels == 64


def test_runner_runs_a_script_with_the_models_registered(tmp_path):
    script = tmp_path / 'dummy_timm_script.py'
    script.write_text(textwrap.dedent('''
        import sys
        import timm
        import helper_beside_script  # the script's folder is on sys.path, as for `python script.py`
        if __name__ == '__main__':
            model = timm.create_model(sys.argv[1], num_classes=int(sys.argv[2]), device='meta')
            print(sys.argv[0].endswith('dummy_timm_script.py'), type(model).__name__, model.num_classes,
                  sum(p.numel() for p in model.parameters()))
    '''))
    (tmp_path / 'helper_beside_script.py').write_text('')
    result = subprocess.run([sys.executable, '-m', 'se_plugins.timm.run', str(script), 'se_resnet18_plugin', '5'],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'ResNet', '5', str(11_779_624 - 513 * 1000 + 513 * 5)]


def test_runner_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match='usage: python -m se_plugins.timm.run SCRIPT.py'):
        run_main([])
    with pytest.raises(SystemExit, match="'missing.py' is not a file"):
        run_main(['missing.py'])
    run_main(['--help'])
    assert 'usage:' in capsys.readouterr().out
