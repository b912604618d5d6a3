"""Soundness: in every scenario users run, our SE models compute exactly what the stock SE models compute.

Each test runs one scenario (gradient checkpointing, hooks, double backward, torch.func, copies,
export, ...) on a stock SE model -- timm's ``seresnet*`` or MMPretrain's ``SEResNet`` -- and on ours
with the same weights, and compares the outputs, the input and parameter gradients, and every
buffer (BatchNorm ``running_mean``/``running_var`` and ``num_batches_tracked``). The reference's
norms are randomised first: timm zero-initialises each block's last BN weight, which would hide SE.

- Exactness is checked in float64 (outputs to 1e-10, gradients to 1e-9 relative max-abs difference,
  running statistics to rtol 1e-10); float32 only where the scenario needs it (bf16 autocast,
  tracing/ONNX, the activation-memory count).
- ``memory``: ``lean`` is the default (no ``memory`` key in ``se_cfg``), ``plain`` is
  ``se_cfg=dict(memory='plain')``; both run wherever it is cheap.
- The models are the real architectures (timm ``seresnet50``/``se_resnet50_plugin``, MMPretrain
  ``SEResNet(depth=50)``/``ResNet(depth=50, se_cfg=...)``, timm ``seresnet18``) at a quarter of
  the width (timm ``channels=(16, 32, 64, 128), stem_width=16``, MMPretrain ``base_channels=16,
  stem_channels=16``) so that float64 steps take milliseconds; full width where the brief
  measures memory. Each test builds fresh models (a few tens of milliseconds)
  rather than deep-copying shared ones, since ``copy.deepcopy`` is itself under test here.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

timm = pytest.importorskip('timm')
import se_plugins  # noqa: E402,F401  (registers the se_*_plugin models, and se_cfg on MMPretrain's ResNet when it loads)
from se_plugins.convert import from_timm_native  # noqa: E402

pytestmark = [pytest.mark.usefixtures('one_thread'),
              pytest.mark.filterwarnings('ignore:.*use_reentrant:UserWarning')]  # MMPretrain's with_cp

OUT_TOL, GRAD_TOL, STAT_RTOL, STAT_ATOL = 1e-10, 1e-9, 1e-10, 1e-13
F32_TOL = 1e-5  # float32 eval outputs of the same network (traced, ONNX): rounding only (~2e-7 seen)
BF16_TOL = 2e-2

TIMM_NARROW = dict(channels=(16, 32, 64, 128), stem_width=16)
MM_NARROW = dict(base_channels=16, stem_channels=16)
# framework -> (stock SE model, ours, the same network without SE)
TIMM_NAMES = {'timm': ('seresnet50', 'se_resnet50_plugin', 'resnet50'),
              'timm18': ('seresnet18', 'se_resnet18_plugin', 'resnet18')}
LAST_NORM = {'timm': 'bn3', 'timm18': 'bn2', 'mmpretrain': 'norm3'}  # attribute
LAST_NORM_NAME = {'timm': 'bn3', 'timm18': 'bn2', 'mmpretrain': 'bn3'}  # in named_modules (MMPretrain: norm3 -> bn3)
LAST_CONV = {'timm': 'conv3', 'timm18': 'conv2', 'mmpretrain': 'conv3'}
SE_MODULE = re.compile(r'layer\d+\.\d+\.(se|se_layer)')
SE_INTERNAL = re.compile(r'\.(se|se_layer)\.')  # a module or parameter inside an SE module

FRAMEWORKS = ['timm', 'mmpretrain']
MEMORY = [pytest.param(None, id='lean'), pytest.param('plain', id='plain')]


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------

def _mmpretrain():
    pytest.importorskip('mmpretrain')
    import se_plugins.mmpretrain  # noqa: F401  (se_cfg on MMPretrain's ResNet family)
    from mmpretrain.models import SEResNet
    from mmpretrain.registry import MODELS
    return SEResNet, MODELS


def se_cfg_of(memory: Optional[str], **cfg: Any) -> dict:
    """``se_cfg`` with ``memory`` (``None``: the key is left out, i.e. the lean default)."""
    return cfg if memory is None else dict(cfg, memory=memory)


def build_ref(framework: str, full: bool = False, **kwargs: Any) -> nn.Module:
    """The stock SE model: timm's ``seresnet50``/``seresnet18`` or MMPretrain's ``SEResNet(depth=50)``."""
    if framework in TIMM_NAMES:
        narrow = {} if full or framework == 'timm18' else TIMM_NARROW
        return timm.create_model(TIMM_NAMES[framework][0], **{'num_classes': 10, **narrow, **kwargs})
    SEResNet, _ = _mmpretrain()
    return SEResNet(**{'depth': 50, **({} if full else MM_NARROW), **kwargs})


def build_ours(framework: str, memory: Optional[str] = None, full: bool = False, **kwargs: Any) -> nn.Module:
    """Ours: ``se_resnet50_plugin``/``se_resnet18_plugin`` or MMPretrain ``ResNet(depth=50, se_cfg=...)``."""
    if framework in TIMM_NAMES:
        narrow = {} if full or framework == 'timm18' else TIMM_NARROW
        return timm.create_model(TIMM_NAMES[framework][1], se_cfg=se_cfg_of(memory),
                                 **{'num_classes': 10, **narrow, **kwargs})
    _, MODELS = _mmpretrain()
    return MODELS.build(dict(type='ResNet', se_cfg=se_cfg_of(memory, ratio=16),
                             **{'depth': 50, **({} if full else MM_NARROW), **kwargs}))


def build_plain(framework: str) -> nn.Module:
    """The same network without SE, full width: timm ``resnet50`` or MMPretrain's stock ``ResNet(depth=50)``."""
    if framework in TIMM_NAMES:
        return timm.create_model(TIMM_NAMES[framework][2], num_classes=10)
    _, MODELS = _mmpretrain()
    return MODELS.build(dict(type='ResNet', depth=50))


def to_ours(framework: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The reference's state dict in our key layout."""
    return from_timm_native(state_dict) if framework in TIMM_NAMES else dict(state_dict)


def canon(name: str) -> str:
    """A parameter/buffer/module name in our layout (timm's ``se.fc1`` is our ``se.conv1.conv``)."""
    return (name + '.').replace('.se.fc1.', '.se.conv1.conv.').replace('.se.fc2.', '.se.conv2.conv.')[:-1]


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random affine norms and running statistics (and ConvAWS's standardisation parameters)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64) * (high - low) + low)

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) * std)

    for m in model.modules():
        if isinstance(m, (_BatchNorm, nn.GroupNorm)) and m.weight is not None:
            uniform(m.weight, 0.2, 0.5)
            normal(m.bias, 0.1)
        if isinstance(m, _BatchNorm) and m.running_mean is not None:
            normal(m.running_mean, 0.1)
            uniform(m.running_var, 0.5, 1.5)
        if getattr(m, 'weight_gamma', None) is not None:  # mmcv's ConvAWS2d
            uniform(m.weight_gamma, 0.5, 1.5)
            normal(m.weight_beta, 0.1)


def make_pair(framework: str, memory: Optional[str] = None, dtype: torch.dtype = torch.float64,
              **kwargs: Any):
    """(stock, ours) with the same (randomised) weights, in training mode, in ``dtype``."""
    torch.manual_seed(0)
    ref = build_ref(framework, **kwargs)
    randomize(ref)
    ours = build_ours(framework, memory, **kwargs)
    ours.load_state_dict(to_ours(framework, ref.state_dict()))  # strict
    for model in (ref, ours):
        model.to(dtype)
        model.train()  # (MMPretrain's ResNet.train returns None: no chaining)
    return ref, ours


def inputs(batch: int = 4, size: int = 32, channels: int = 3, dtype: torch.dtype = torch.float64,
           seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)).to(dtype)


def blocks(model: nn.Module) -> List[nn.Module]:
    return [m for name, m in model.named_modules() if re.fullmatch(r'layer\d+\.\d+', name)]


# ----------------------------------------------------------------------------------------------
# Running a scenario on both models and comparing everything
# ----------------------------------------------------------------------------------------------

def features(out: Any) -> torch.Tensor:
    """The tensor a model returns (an MMPretrain backbone returns a tuple of stage outputs)."""
    return out[-1] if isinstance(out, (tuple, list)) else out


def loss_weights(shape, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(dtype)


def weighted_sum(out: torch.Tensor) -> torch.Tensor:
    """A scalar loss with fixed random weights (the same for both models)."""
    return (out * loss_weights(out.shape, out.dtype)).sum()


@dataclass
class Run:
    out: torch.Tensor
    x_grad: Optional[torch.Tensor]
    grads: Dict[str, Optional[torch.Tensor]]
    buffers: Dict[str, torch.Tensor]


def step(model: nn.Module, x: torch.Tensor, forward: Optional[Callable] = None,
         backward: Optional[Callable] = None, loss: bool = True) -> Run:
    """One forward (``forward(model, x)``, default ``model(x)``) and backward (``backward(out, x)``,
    default ``weighted_sum(out).backward()``; none with ``loss=False``) on a fresh leaf copy of ``x``."""
    x = x.detach().clone().requires_grad_()
    out = features(model(x) if forward is None else forward(model, x))
    if backward is not None:
        backward(out, x)
    elif loss:
        weighted_sum(out).backward()
    return Run(out=out.detach().clone(), x_grad=None if x.grad is None else x.grad.clone(),
               grads={canon(n): None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
               buffers={canon(n): b.detach().clone() for n, b in model.named_buffers()})


def rel_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (absolute where ``expected`` is all zero); NaN stays NaN."""
    a, e = actual.detach().double(), expected.detach().double()
    diff, scale = (a - e).abs().max().item(), e.abs().max().item()
    return diff / scale if scale > 0 else diff


def check(problems: List[str], what: str, actual: Optional[torch.Tensor], expected: Optional[torch.Tensor],
          tol: float) -> None:
    """Append to ``problems`` how ``actual`` differs from ``expected`` (``None`` must match ``None``)."""
    if actual is None or expected is None:
        if (actual is None) != (expected is None):
            problems.append(f'{what}: {"None" if actual is None else "a tensor"} where the stock model has '
                            f'{"None" if expected is None else "a tensor"}')
        return
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        problems.append(f'{what}: {tuple(actual.shape)} {actual.dtype} '
                        f'vs stock {tuple(expected.shape)} {expected.dtype}')
        return
    if actual.numel() and not rel_diff(actual, expected) <= tol:
        problems.append(f'{what}: relative difference {rel_diff(actual, expected):.3g} > {tol:g}')


def check_buffers(problems: List[str], actual: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]) -> None:
    if set(actual) != set(expected):
        problems.append(f'buffer names differ: {sorted(set(actual) ^ set(expected))[:6]}')
    for name in sorted(set(actual) & set(expected)):
        a, e = actual[name], expected[name]
        if a.shape != e.shape or a.dtype != e.dtype:
            problems.append(f'buffer {name}: {tuple(a.shape)} {a.dtype} vs stock {tuple(e.shape)} {e.dtype}')
        elif name.endswith('num_batches_tracked') or not a.is_floating_point():
            if not torch.equal(a, e):
                problems.append(f'buffer {name}: {a.tolist()} vs stock {e.tolist()}')
        elif not torch.allclose(a, e, rtol=STAT_RTOL, atol=STAT_ATOL):
            problems.append(f'buffer {name}: relative difference {rel_diff(a, e):.3g}')


def report(problems: List[str]) -> None:
    assert not problems, (f'{len(problems)} difference(s) from the stock SE model:\n  '
                          + '\n  '.join(problems[:12]) + ('\n  ...' if len(problems) > 12 else ''))


def differences(expected: Run, actual: Run, out_tol: float = OUT_TOL, grad_tol: float = GRAD_TOL) -> List[str]:
    problems: List[str] = []
    check(problems, 'output', actual.out, expected.out, out_tol)
    check(problems, 'input grad', actual.x_grad, expected.x_grad, grad_tol)
    if set(actual.grads) != set(expected.grads):
        problems.append(f'parameter names differ: {sorted(set(actual.grads) ^ set(expected.grads))[:6]}')
    for name in sorted(set(actual.grads) & set(expected.grads)):
        check(problems, f'grad {name}', actual.grads[name], expected.grads[name], grad_tol)
    check_buffers(problems, actual.buffers, expected.buffers)
    return problems


def assert_same(expected: Run, actual: Run, **tols: float) -> None:
    report(differences(expected, actual, **tols))


def compare(ref: nn.Module, ours: nn.Module, x: torch.Tensor, **scenario: Any):
    """Run the same scenario (see :func:`step`) on both models and compare everything."""
    expected, actual = step(ref, x, **scenario), step(ours, x, **scenario)
    assert_same(expected, actual)
    return expected, actual


# ----------------------------------------------------------------------------------------------
# Plain training and evaluation steps (the baseline every scenario below builds on)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('memory', [pytest.param(None, id='default'), 'lean', 'plain'])
@pytest.mark.parametrize('framework', ['timm', 'timm18', 'mmpretrain'])
def test_training_and_eval_step(framework, memory, mode):
    ref, ours = make_pair(framework, memory)
    if mode == 'eval':
        ref.eval(), ours.eval()
    compare(ref, ours, inputs())


# ----------------------------------------------------------------------------------------------
# Recomputation: gradient checkpointing
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', ['timm', 'timm18'])
def test_timm_grad_checkpointing(framework, memory):
    """timm's default (non-reentrant) checkpointing recomputes each block in backward."""
    ref, ours = make_pair(framework, memory)
    for model in (ref, ours):
        model.set_grad_checkpointing(True)
    expected, _ = compare(ref, ours, inputs())
    # The scenario really recomputed (stock: each BN counts the recomputation too).
    assert int(expected.buffers[f'layer1.0.{LAST_NORM_NAME[framework]}.num_batches_tracked']) > 1


@pytest.mark.parametrize('memory', MEMORY)
def test_mmpretrain_with_cp(memory):
    """MMPretrain's ``with_cp=True`` (torch's reentrant checkpoint, recomputed in backward)."""
    ref, ours = make_pair('mmpretrain', memory, with_cp=True)
    expected, _ = compare(ref, ours, inputs())
    assert int(expected.buffers['layer1.0.bn3.num_batches_tracked']) > 1


# ----------------------------------------------------------------------------------------------
# Convolutions that are not plain convolutions
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('conv_type', ['ConvWS', 'ConvAWS'])
def test_mmpretrain_weight_standardized_convs(conv_type, memory):
    _mmpretrain()
    import mmcv.cnn  # noqa: F401  (registers the conv layers)
    from mmengine.registry import MODELS as MMENGINE_MODELS
    if MMENGINE_MODELS.get(conv_type) is None:
        pytest.skip(f"{conv_type} is not in this mmcv's registry")
    ref, ours = make_pair('mmpretrain', memory, conv_cfg=dict(type=conv_type))
    assert type(ours.layer1[0].conv3) is type(ref.layer1[0].conv3) is MMENGINE_MODELS.get(conv_type)
    compare(ref, ours, inputs())


# ----------------------------------------------------------------------------------------------
# Hooks users put on the block's layers
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_hook_masking_last_conv_output_in_place(framework, memory):
    """Pruning/ablation: a forward hook on conv3 zeroes channels of its output in place."""
    ref, ours = make_pair(framework, memory)
    for model in (ref, ours):
        for block in blocks(model):
            conv = getattr(block, LAST_CONV[framework])
            mask = torch.ones(conv.out_channels, 1, 1, dtype=torch.float64)
            mask[::3] = 0
            conv.register_forward_hook(lambda module, args, out, mask=mask: out.mul_(mask))
    compare(ref, ours, inputs())


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('kind', ['returns_new', 'in_place'])
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_forward_hook_on_last_norm(framework, kind, memory):
    """A forward hook on bn3 that returns ``output * 0.5``, or halves the output in place."""
    def halve(module, args, out):
        if kind == 'returns_new':
            return out * 0.5
        out.mul_(0.5)  # and returns None: the module's output, changed in place

    ref, ours = make_pair(framework, memory)
    for model in (ref, ours):
        for block in blocks(model):
            getattr(block, LAST_NORM[framework]).register_forward_hook(halve)
    compare(ref, ours, inputs())


def _diff_kept(expected: Dict[tuple, list], actual: Dict[tuple, list], when: str,
               uncalled: frozenset = frozenset()) -> List[str]:
    """Differences of kept tensors, keyed ``(what, module name, index)``. Ours may in addition call
    modules that the stock model has but skips (``uncalled``): MMPretrain's ResNet blocks call their
    ``drop_path`` (an Identity at rate 0), which SEResNet's blocks leave out."""
    problems: List[str] = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key, []), actual.get(key, [])
        if not e and key[1] in uncalled:
            continue
        what = f'{when}: {key[0]} of {key[1] or "the model"}[{key[2]}]'
        if len(e) != len(a):
            problems.append(f'{what}: kept {len(a)} tensor(s), stock {len(e)}')
            continue
        for i, (te, ta) in enumerate(zip(e, a)):
            check(problems, f'{what} call #{i}', ta, te, OUT_TOL)
    return problems


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_kept_inputs_and_module_outputs(framework, memory):
    """A pre-hook on each SE module keeps its input (and sees as many positional args as on stock)
    and a global forward hook keeps every module's
    output (as feature extractors and activation loggers do): the kept tensors equal the stock
    model's after the forward and still after the backward (nothing overwrote them in place).
    Modules inside the SE layers are left out: their layout differs by design."""
    ref, ours = make_pair(framework, memory)
    x = inputs()
    after_forward, after_backward, called = [], [], []
    for model in (ref, ours):
        names = {id(m): canon(n) for n, m in model.named_modules()}
        kept: Dict[tuple, list] = {}

        def keep_output(module, args, output, names=names, kept=kept):
            name = names.get(id(module))
            if name is None or SE_INTERNAL.search(name):
                return
            for i, t in enumerate(output if isinstance(output, (tuple, list)) else (output,)):
                if isinstance(t, torch.Tensor):
                    kept.setdefault(('output', name, i), []).append(t)

        def keep_input(module, args, names=names, kept=kept):
            kept.setdefault(('input', names[id(module)], 0), []).append(args[0])
            kept.setdefault(('positional args', names[id(module)], 0), []).append(torch.tensor(len(args)))

        handles = [m.register_forward_pre_hook(keep_input) for n, m in model.named_modules()
                   if SE_MODULE.fullmatch(n)]
        assert len(handles) == 16
        handles.append(torch.nn.modules.module.register_module_forward_hook(keep_output))
        try:
            xi = x.clone().requires_grad_()
            out = features(model(xi))
        finally:
            for handle in handles:
                handle.remove()
        after_forward.append({k: [t.detach().clone() for t in v] for k, v in kept.items()})
        weighted_sum(out).backward()
        after_backward.append(kept)
        called.append({key[1] for key in kept})
    uncalled = frozenset(canon(n) for n, _ in ref.named_modules()) - called[0]
    report(_diff_kept(*after_forward, 'after forward', uncalled)
           + _diff_kept(*after_backward, 'after backward', uncalled))


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_full_backward_hook_on_last_norm(framework, memory):
    """``register_full_backward_hook`` on norm3 sees the same grad_output and grad_input as on stock."""
    def record(store, name, module, grad_input, grad_output):
        store.setdefault(name, []).append(
            [None if g is None else g.detach().clone() for g in (*grad_input, *grad_output)])

    ref, ours = make_pair(framework, memory)
    seen = ({}, {})
    for model, store in zip((ref, ours), seen):
        for name, block in model.named_modules():
            if re.fullmatch(r'layer\d+\.\d+', name):
                norm = getattr(block, LAST_NORM[framework])
                norm.register_full_backward_hook(functools.partial(record, store, name))
    compare(ref, ours, inputs())
    problems: List[str] = []
    if set(seen[0]) != set(seen[1]) or not seen[0]:
        problems.append(f'hooks fired on {sorted(seen[1])}, stock on {sorted(seen[0])}')
    for name in sorted(set(seen[0]) & set(seen[1])):
        if len(seen[0][name]) != len(seen[1][name]):
            problems.append(f'{name}: hook fired {len(seen[1][name])} time(s), stock {len(seen[0][name])}')
            continue
        for call_e, call_a in zip(seen[0][name], seen[1][name]):
            for i, (e, a) in enumerate(zip(call_e, call_a)):
                check(problems, f'{name}.{LAST_NORM[framework]} (grad_input..., grad_output...)[{i}]',
                      a, e, GRAD_TOL)
    report(problems)


# ----------------------------------------------------------------------------------------------
# Autograd beyond one backward
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_backward_twice_with_retain_graph(framework, memory):
    """``loss.backward(retain_graph=True)`` twice: the gradients accumulate to twice one backward."""
    def twice(out, x):
        loss = weighted_sum(out)
        loss.backward(retain_graph=True)
        loss.backward()

    ref, ours = make_pair(framework, memory)
    x = inputs()
    _, actual = compare(ref, ours, x, backward=twice)
    once = step(make_pair(framework)[0], x)  # a fresh stock model with the same weights: one backward
    doubled = Run(out=once.out, x_grad=2 * once.x_grad, buffers=once.buffers,
                  grads={n: None if g is None else 2 * g for n, g in once.grads.items()})
    assert_same(doubled, actual)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_double_backward_gradient_penalty(framework, memory):
    """Gradient penalty: ``g = grad(loss, x, create_graph=True)``, then ``(g ** 2).sum().backward()``."""
    def penalty(out, x):
        (g,) = torch.autograd.grad(weighted_sum(out), x, create_graph=True)
        g.square().sum().backward()

    ref, ours = make_pair(framework, memory)
    compare(ref, ours, inputs(), backward=penalty)


# (framework, (batch, size)) of layer1[0]'s input: a BasicBlock and the bottlenecks
# (64->16->64 in timm, 16->16->64 in MMPretrain).
GRADCHECK_CASES = [pytest.param('timm18', (1, 6), id='timm18-BasicBlock'),
                   pytest.param('timm', (2, 12), id='timm-Bottleneck'),
                   pytest.param('mmpretrain', (2, 12), id='mmpretrain-Bottleneck')]


def _block_function(framework: str, memory: Optional[str], shape):
    """``layer1[0]`` of our model (train mode, float64) as a function of its input, its SE's
    parameters and its last norm's weight and bias; and those inputs."""
    _, ours = make_pair(framework, memory)
    block = ours.layer1[0]
    names = [n for n, _ in block.named_parameters()
             if n.startswith(('se.', 'se_layer.', LAST_NORM_NAME[framework] + '.'))]
    assert len(names) == 6
    params = [block.get_parameter(n).detach().clone().requires_grad_() for n in names]
    x = inputs(batch=shape[0], channels=block.conv1.in_channels, size=shape[1], seed=3).requires_grad_()

    def f(x, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps)), (x,))
    return f, (x, *params)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework, shape', GRADCHECK_CASES)
def test_gradcheck_one_block(framework, shape, memory):
    f, args = _block_function(framework, memory, shape)
    assert torch.autograd.gradcheck(f, args, fast_mode=True)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework, shape', GRADCHECK_CASES)
def test_gradgradcheck_one_block(framework, shape, memory):
    f, args = _block_function(framework, memory, shape)
    assert torch.autograd.gradgradcheck(f, args, fast_mode=True)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_torch_func_grad_and_vmap_per_sample_grads(framework, memory):
    """``torch.func.grad`` of a batch loss and ``vmap(grad(...))`` per-sample gradients (eval mode)."""
    ref, ours = make_pair(framework, memory)
    x = inputs()
    results = []
    for model in (ref, ours):
        model.eval()
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = {n: b.detach() for n, b in model.named_buffers()}
        with torch.no_grad():
            shape = features(model(x)).shape
        weights = loss_weights(shape, x.dtype)  # made outside vmap (no random ops inside it)

        def batch_loss(params, x, model=model, buffers=buffers, weights=weights):
            out = features(torch.func.functional_call(model, (params, buffers), (x,)))
            return (out * weights[:out.shape[0]]).sum()

        def sample_loss(params, xi, model=model, buffers=buffers, weights=weights):
            out = features(torch.func.functional_call(model, (params, buffers), (xi.unsqueeze(0),)))
            return (out * weights[:1]).sum()

        grads, x_grad = torch.func.grad(batch_loss, argnums=(0, 1))(params, x)
        per_sample, x_grads = torch.func.vmap(torch.func.grad(sample_loss, argnums=(0, 1)),
                                              in_dims=(None, 0))(params, x)
        results.append(({canon(n): g for n, g in grads.items()}, x_grad,
                        {canon(n): g for n, g in per_sample.items()}, x_grads))
    problems: List[str] = []
    (g_ref, xg_ref, ps_ref, xs_ref), (g_ours, xg_ours, ps_ours, xs_ours) = results
    check(problems, 'func.grad input grad', xg_ours, xg_ref, GRAD_TOL)
    check(problems, 'vmap per-sample input grads', xs_ours, xs_ref, GRAD_TOL)
    assert set(g_ref) == set(g_ours) == set(ps_ref) == set(ps_ours)
    for name in sorted(g_ref):
        check(problems, f'func.grad {name}', g_ours[name], g_ref[name], GRAD_TOL)
        check(problems, f'vmap per-sample {name}', ps_ours[name], ps_ref[name], GRAD_TOL)
    report(problems)


# ----------------------------------------------------------------------------------------------
# Dispatch modes, precision, layouts
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_flop_counter_training_step(framework, memory):
    """``FlopCounterMode`` around forward and backward: no crash, same numbers, flops within 5%."""
    from torch.utils.flop_counter import FlopCounterMode
    ref, ours = make_pair(framework, memory)
    x = inputs()
    runs, flops = [], []
    for model in (ref, ours):
        counter = FlopCounterMode(display=False)
        with counter:
            runs.append(step(model, x))
        flops.append(counter.get_total_flops())
    print(f'{framework} training step flops: stock {flops[0]:,}, ours {flops[1]:,} ({flops[1] / flops[0]:.4f}x)')
    assert_same(*runs)
    assert abs(flops[1] / flops[0] - 1) <= 0.05


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_bf16_autocast(framework, memory):
    """``torch.autocast('cpu', dtype=torch.bfloat16)`` on float32 models, forward and backward, in
    eval mode and then a training step: the stock model's output dtype and buffers, and values
    within bf16 rounding: relative 2e-2, or twice what bf16 itself moves the stock model away from
    its float32 result where that is more. (A training step of a random deep network amplifies
    rounding, BatchNorm normalising few values: there bf16 moves the stock output by ~0.4 and its
    input gradient by order 1, so the training comparison only catches gross errors; eval mode
    is where the 2e-2 bound bites.)"""
    def autocast(model, x):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return model(x)

    ref, ours = make_pair(framework, memory, dtype=torch.float32)
    fp32 = make_pair(framework, dtype=torch.float32)[0]  # the stock model without autocast
    x = inputs(dtype=torch.float32)
    problems: List[str] = []
    for mode in ('eval', 'train'):  # eval first: it leaves the running statistics as they are
        for model in (ref, ours, fp32):
            model.train(mode == 'train')
        baseline = step(fp32, x)
        expected, actual = step(ref, x, forward=autocast), step(ours, x, forward=autocast)
        noise_out, noise_grad = rel_diff(expected.out, baseline.out), rel_diff(expected.x_grad, baseline.x_grad)
        print(f'{mode}: stock bf16 vs float32: output {noise_out:.3g}, input grad {noise_grad:.3g}; '
              f'ours vs stock bf16: output {rel_diff(actual.out, expected.out):.3g}, '
              f'input grad {rel_diff(actual.x_grad, expected.x_grad):.3g}')
        check(problems, f'{mode} output', actual.out, expected.out, max(BF16_TOL, 2 * noise_out))
        check(problems, f'{mode} input grad', actual.x_grad, expected.x_grad, max(BF16_TOL, 2 * noise_grad))
        for name, count in expected.buffers.items():
            if name.endswith('num_batches_tracked') and not torch.equal(actual.buffers.get(name), count):
                problems.append(f'{mode}: buffer {name}: {actual.buffers.get(name)} vs stock {count}')
    report(problems)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_channels_last(framework, memory):
    """channels_last models and inputs."""
    ref, ours = make_pair(framework, memory)
    for model in (ref, ours):
        model.to(memory_format=torch.channels_last)
    x = inputs().to(memory_format=torch.channels_last)
    compare(ref, ours, x)
    ref.eval(), ours.eval()
    compare(ref, ours, x)


# ----------------------------------------------------------------------------------------------
# Training-time configurations
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('frozen', [False, True], ids=['bn_eval', 'bn_eval_frozen'])
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_eval_mode_batchnorm_while_training(framework, frozen, memory):
    """``model.train()`` then every BatchNorm ``.eval()`` (optionally with frozen affine parameters)."""
    ref, ours = make_pair(framework, memory)
    for model in (ref, ours):
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.eval()
                if frozen:
                    m.weight.requires_grad_(False), m.bias.requires_grad_(False)
    compare(ref, ours, inputs())


@pytest.mark.parametrize('memory', MEMORY)
def test_mmpretrain_norm_eval_and_frozen_stages(memory):
    ref, ours = make_pair('mmpretrain', memory, norm_eval=True, frozen_stages=2)
    requires_grad = [{canon(n): p.requires_grad for n, p in m.named_parameters()} for m in (ref, ours)]
    assert requires_grad[1] == requires_grad[0]
    assert not requires_grad[1]['layer2.3.se_layer.conv1.conv.weight']  # (SE of frozen stages freezes)
    training = [{n: m.training for n, m in model.named_modules() if not SE_INTERNAL.search(n)}
                for model in (ref, ours)]
    assert training[1] == training[0]
    compare(ref, ours, inputs())


@pytest.mark.parametrize('memory', MEMORY)
def test_mmpretrain_group_norm(memory):
    """``norm_cfg=dict(type='GN', num_groups=32)`` (widths divisible by 32)."""
    gn = dict(norm_cfg=dict(type='GN', num_groups=32, requires_grad=True), base_channels=32, stem_channels=32)
    ref, ours = make_pair('mmpretrain', memory, **gn)
    assert isinstance(ours.layer1[0].norm3, nn.GroupNorm)
    compare(ref, ours, inputs())
    ref.eval(), ours.eval()
    compare(ref, ours, inputs())


# ----------------------------------------------------------------------------------------------
# Copies: EMA (deepcopy) and pickling a whole model
# ----------------------------------------------------------------------------------------------

def _copy(model: nn.Module, how: str) -> nn.Module:
    if how == 'pickle':
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=False)
    if isinstance(model, timm.models.ResNet):
        from timm.utils import ModelEmaV3
        ema = ModelEmaV3(model, decay=0.5)
        ema.update(model)
        return ema.module
    from torch.optim.swa_utils import AveragedModel
    averaged = AveragedModel(model)
    averaged.update_parameters(model)
    return averaged.module


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('how', ['ema_deepcopy', 'pickle'])
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_copy_computes_the_same_and_owns_its_se(framework, how, memory):
    """A deep copy (timm's ModelEmaV3 / torch's AveragedModel) or a ``torch.save``/``torch.load``
    round trip of the whole model: the copy computes what the stock copy computes, with its own
    SE (its SE gate biases and last norms are changed in the copies only), and training the copy
    leaves the original untouched."""
    ref, ours = make_pair(framework, memory)
    copies = [_copy(model, how) for model in (ref, ours)]
    with torch.no_grad():
        for model in copies:
            for name, p in model.named_parameters():
                if SE_INTERNAL.search(name) and canon(name).endswith('conv2.conv.bias'):
                    p.add_(1.0)
                elif re.search(rf'\.{LAST_NORM_NAME[framework]}\.weight$', name):
                    p.mul_(1.5)
    x = inputs()
    compare(*copies, x)
    compare(ref, ours, x)  # the originals: their own weights, no gradients or statistics from the copies


# ----------------------------------------------------------------------------------------------
# Compilers and exporters
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', ['aot_eager', pytest.param('inductor', marks=pytest.mark.slow)])
def test_torch_compile_se_resnet18(backend):
    """``torch.compile`` of se_resnet18 (lean default), float64 at 32x32: eval output, then one
    training step. ``aot_eager`` traces with Dynamo and AOTAutograd (functionalisation, the
    backward graph) without code generation; ``inductor``, the default backend, compiles C++
    kernels (minutes with a cold cache on 2 cores, hence slow)."""
    ref, ours = make_pair('timm18')
    x = inputs()
    torch._dynamo.reset()
    compiled = torch.compile(ours, backend=backend)
    try:
        ref.eval(), ours.eval()
        with torch.no_grad():
            assert_same(step(ref, x, loss=False), step(ours, x, forward=lambda m, x: compiled(x), loss=False))
        ref.train(), ours.train()
        assert_same(step(ref, x), step(ours, x, forward=lambda m, x: compiled(x)))
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_jit_trace_eval(framework, memory):
    """``torch.jit.trace`` of the eval model, run on another input, equals the stock model (float32)."""
    ref, ours = make_pair(framework, memory, dtype=torch.float32)
    ref.eval(), ours.eval()
    x, other = inputs(dtype=torch.float32, seed=1), inputs(dtype=torch.float32, seed=4)
    with torch.no_grad():
        traced = torch.jit.trace(ours, x)
        problems: List[str] = []
        check(problems, 'traced output, trace input', features(traced(x)), features(ref(x)), F32_TOL)
        check(problems, 'traced output, another input', features(traced(other)), features(ref(other)), F32_TOL)
        check(problems, 'eager output after tracing', features(ours(other)), features(ref(other)), F32_TOL)
    report(problems)


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_onnx_export_eval(framework, memory):
    """ONNX export (opset 17, TorchScript exporter) of the eval model, run by onnxruntime."""
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    ref, ours = make_pair(framework, memory, dtype=torch.float32)
    ref.eval(), ours.eval()
    x, other = inputs(dtype=torch.float32, seed=1), inputs(dtype=torch.float32, seed=4)
    buffer = io.BytesIO()
    torch.onnx.export(ours, (x,), buffer, opset_version=17, dynamo=False, input_names=['x'])
    session = ort.InferenceSession(buffer.getvalue())
    got = torch.from_numpy(session.run(None, {'x': other.numpy()})[-1])
    with torch.no_grad():
        expected = features(ref(other))
    problems: List[str] = []
    check(problems, 'onnxruntime output', got, expected, F32_TOL)
    report(problems)


@pytest.mark.parametrize('memory', MEMORY)
def test_jit_script_scriptable_timm_model(memory):
    """``torch.jit.script`` of ``timm.create_model(..., scriptable=True)``: eval output and a training step."""
    ref, ours = make_pair('timm', memory, scriptable=True)
    scripted = torch.jit.script(ours)
    x = inputs()
    ref.eval(), scripted.eval()
    with torch.no_grad():
        assert_same(step(ref, x, loss=False), step(scripted, x, loss=False))
    ref.train(), scripted.train()
    assert_same(step(ref, x), step(scripted, x))


# ----------------------------------------------------------------------------------------------
# Memory: what autograd keeps for backward
# ----------------------------------------------------------------------------------------------

def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward in ``model(x)``, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


@pytest.mark.parametrize('memory', MEMORY)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_saved_activation_memory(framework, memory):
    """Full-width SE-ResNet-50, float32, batch 2 at 64x64, training mode: the lean default keeps at
    most 1.02x the activations of the network without SE; ``memory='plain'`` about what the stock
    SE model keeps (within 2%)."""
    torch.manual_seed(0)
    models = {'ours': build_ours(framework, memory, full=True), 'stock SE': build_ref(framework, full=True),
              'no SE': build_plain(framework)}
    x = inputs(batch=2, size=64, dtype=torch.float32)
    saved = {}
    for name, model in models.items():
        model.train()
        saved[name] = saved_bytes(model, x)
    print(f"{framework} memory={memory or 'default'}: saved bytes " + ', '.join(
        f'{name} {n / 2**20:.2f} MiB ({n / saved["no SE"]:.3f}x)' for name, n in saved.items()))
    if memory == 'plain':
        assert abs(saved['ours'] / saved['stock SE'] - 1) <= 0.02
    else:
        assert saved['ours'] <= 1.02 * saved['no SE']
