"""Time and memory of SE-ResNet-50s against plain ResNet-50, timm's seresnet50 and MMPretrain's SEResNet-50.

    python tools/analysis/benchmark.py [--models ...] [--batch-size 8] [--device cpu|cuda]
        [--amp] [--channels-last] [--compile] [--threads 1 2] [--repeats 10] [--debug]

All models are timed in one interleaved run (rounds of A, B, C; each round starts one model
later: B, C, A), so machine noise hits them alike. The table gives per-model medians and
spread (interquartile range); each ratio is the median over rounds of the ratio of the two
models' times in the same round, which cancels the machine's slow drifts.
"Saved" is the activation memory autograd keeps for backward in one training forward
(distinct storages, parameters excluded, from ``torch.autograd.graph.saved_tensors_hooks``); "peak" is CUDA's peak.
Model names: timm names (``resnet50``, ``seresnet50``, ``se_resnet50_plugin``) and
``mm:ResNet-50``, ``mm:SEResNet-50``, ``mm:ResNet-50+se`` (MMPretrain, ``+se``: our ``se_cfg``).
"""
from __future__ import annotations

import contextlib
import inspect
import re
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

import se_plugins  # noqa: F401  (registers the plugin models)
from se_plugins.analysis.forward import FORWARD_ERRORS, out_of_memory, size_error
from se_plugins.cli import ArgumentParser, InputError, describe, non_negative_int, positive_int, run

DEFAULT_MODELS = ['resnet50', 'se_resnet50_plugin', 'seresnet50', 'mm:ResNet-50', 'mm:ResNet-50+se', 'mm:SEResNet-50']
PLAIN = {'timm': 'resnet50', 'mm': 'mm:ResNet-50'}
MM_NAME = re.compile(r'mm:(\w+)-(\d+)(\+se)?')  # mm:<backbone type>-<depth>[+se]
NOT_BY_DEPTH = ('SparseResNet',)  # SparK's sparse ResNet needs its sparse norm layers, not only a depth


def resnet_family() -> Dict[str, List[int]]:
    """MMPretrain's ResNet-family backbones (ResNet and its subclasses built from a ``depth``) and their depths."""
    from mmpretrain.models.backbones import ResNet
    from mmpretrain.registry import MODELS
    return {name: sorted(kind.arch_settings) for name, kind in MODELS.module_dict.items()
            if isinstance(kind, type) and issubclass(kind, ResNet) and name not in NOT_BY_DEPTH
            and all(isinstance(depth, int) for depth in getattr(kind, 'arch_settings', {'': None}))}


def check_name(name: str) -> None:
    """Raise InputError unless ``name`` is a timm model or an ``mm:TYPE-DEPTH[+se]`` MMPretrain ResNet."""
    if not name.startswith('mm:'):
        import timm
        if not timm.is_model(name):
            raise InputError(f"--models {name!r}: unknown to timm; give timm names (resnet50, se_resnet50_plugin) "
                             "or mm:TYPE-DEPTH[+se] (mm:ResNet-50+se)")
        return
    match = MM_NAME.fullmatch(name)
    if match is None:
        raise InputError(f'--models {name!r}: not mm:TYPE-DEPTH[+se] of an MMPretrain backbone '
                         '(mm:ResNet-50, mm:SEResNet-50, mm:ResNet-50+se)')
    family = resnet_family()
    kind, depth = match[1], int(match[2])
    if kind not in family:
        raise InputError(f'--models {name!r}: {kind} is not a backbone this benchmark builds (MMPretrain\'s '
                         f'ResNet family, by depth); TYPE is one of {", ".join(family)}')
    if depth not in family[kind]:
        raise InputError(f'--models {name!r}: {kind} has no depth {depth}; its depths are {family[kind]}')
    from mmpretrain.registry import MODELS
    if match[3] and 'se_cfg' not in inspect.signature(MODELS.get(kind)).parameters:
        raise InputError(f"--models {name!r}: {kind} takes no se_cfg; '+se' is for ResNet, ResNetV1c, ResNetV1d, "
                         'ResNeXt, ResNet_CIFAR and the SE variants')


def build(name: str) -> nn.Module:
    """A classifier by benchmark name (timm model name or ``mm:...``), checked by :func:`check_name`."""
    if not name.startswith('mm:'):
        import timm
        return timm.create_model(name)
    from mmpretrain.registry import MODELS
    kind, depth, se = MM_NAME.fullmatch(name).groups()
    backbone = dict(type=kind, depth=int(depth), **({'se_cfg': {}} if se else {}))
    try:
        width = MODELS.build(backbone).feat_dim
    except (KeyError, TypeError, ValueError) as err:  # a backbone that needs more arguments than a depth
        raise InputError(f'--models {name!r}: cannot be built from a depth alone ({type(err).__name__}: '
                         f'{describe(err)}); give mm:ResNet-50, mm:SEResNet-50 or mm:ResNet-50+se') from err
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                             head=dict(type='LinearClsHead', num_classes=1000, in_channels=width)))


def first_forward(name: str, model: nn.Module, x: torch.Tensor) -> int:
    """:func:`saved_bytes` of ``model``'s first forward; an input it cannot take is an InputError naming it."""
    sizes = f'--batch-size {x.shape[0]} --img-size {x.shape[-1]}'
    try:
        return saved_bytes(model, x)
    except FORWARD_ERRORS as err:
        if out_of_memory(err) or isinstance(err, AssertionError):  # too large, or a size the model refuses
            given = sizes if out_of_memory(err) else f'--img-size {x.shape[-1]}'
            raise size_error(err, given, x.shape[-1], name, model, x.shape[0]) from err
        raise InputError(f'{sizes}: too small for {name} ({type(err).__name__}: {describe(err)}); '
                         'give a larger batch or image') from err


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x, mode='tensor') if hasattr(model, 'data_preprocessor') else model(x)


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Activation memory autograd keeps for backward: distinct storages, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits(model, x)
    return sum(storages.values())


def make_step(model: nn.Module, x: torch.Tensor, train: bool, amp: bool) -> Callable[[], None]:
    """One inference forward, or one training step (forward, cross-entropy, backward, SGD)."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16 if x.device.type == 'cpu' else torch.float16) \
        if amp else contextlib.nullcontext()
    target = torch.randint(0, 1000, (x.shape[0],), device=x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def infer() -> None:
        with torch.inference_mode(), autocast:
            logits(model, x)

    def step() -> None:
        with autocast:
            loss = nn.functional.cross_entropy(logits(model, x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train(train)
    return step if train else infer


def time_interleaved(steps: Dict[str, Callable[[], None]], repeats: int, warmup: int, cuda: bool) -> Dict[str, List[float]]:
    """Per model, its time in each round (rounds rotate the order, so no model always follows another)."""
    times: Dict[str, List[float]] = {name: [] for name in steps}
    names = list(steps)
    for i in range(warmup + repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            step = steps[name]
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def framework(name: str) -> str:
    return 'mm' if name.startswith('mm:') else 'timm'


def paired_ratio(a: List[float], b: List[float]) -> float:
    """The median over rounds of ``a / b``, both timed in the same round."""
    return statistics.median(x / y for x, y in zip(a, b))


def report(title: str, times: Dict[str, List[float]], batch: int, extra: Dict[str, str]) -> None:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    refs = [r for r in ('seresnet50', 'mm:SEResNet-50') if r in med]
    print(f'\n### {title}\n')
    head = ['model', 'median ms', 'IQR ms', 'img/s', 'vs plain'] + [f'vs {r}' for r in refs] + list(extra)
    print('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        plain = PLAIN[framework(name)]
        row = [name, f'{med[name] * 1e3:.1f}', f'{(q[2] - q[0]) * 1e3:.1f}', f'{batch / med[name]:.1f}',
               f'{paired_ratio(ts, times[plain]):.3f}' if plain in med else '-']
        row += [f'{paired_ratio(ts, times[r]):.3f}' for r in refs] + [extra[k].get(name, '-') for k in extra]
        print('| ' + ' | '.join(row) + ' |')


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Time the models and print the tables; a bad flag raises :class:`~se_plugins.cli.InputError`."""
    parser = ArgumentParser(prog='benchmark.py', description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS)
    parser.add_argument('--batch-size', type=positive_int, default=8)
    parser.add_argument('--img-size', type=positive_int, default=224)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast on CPU, float16 on CUDA')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model')
    parser.add_argument('--threads', type=positive_int, nargs='+', default=[torch.get_num_threads()])
    parser.add_argument('--repeats', type=positive_int, default=10)
    parser.add_argument('--warmup', type=non_negative_int, default=2)
    parser.add_argument('--modes', nargs='+', default=['infer', 'train'], choices=['infer', 'train'])
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device on this machine; use --device cpu')
    for name in args.models:
        check_name(name)

    torch.manual_seed(0)
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    sizes = f'--batch-size {args.batch_size} --img-size {args.img_size}'
    try:
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device).to(memory_format=memory_format)
    except RuntimeError as err:  # no memory for the input itself
        raise size_error(err, sizes, args.img_size, 'the models', batch=args.batch_size) from err
    models = {name: build(name).to(device, memory_format=memory_format) for name in args.models}
    params = {name: f'{sum(p.numel() for p in m.parameters()) / 1e6:.2f}M' for name, m in models.items()}
    saved = {name: first_forward(name, m, x) for name, m in models.items()}  # what each cannot take fails here
    saved_col = {name: f'{b / 2**20:.0f} MiB ({b / saved[PLAIN[framework(name)]]:.3f}x)'
                 if PLAIN[framework(name)] in saved else f'{b / 2**20:.0f} MiB' for name, b in saved.items()}
    runners = {name: torch.compile(m) if args.compile else m for name, m in models.items()}
    print(f'# batch {args.batch_size}, {args.img_size}x{args.img_size}, {args.device}, amp={args.amp}, '
          f'channels_last={args.channels_last}, compile={args.compile}, torch {torch.__version__}')
    for threads in args.threads:
        torch.set_num_threads(threads)
        for mode in args.modes:
            steps = {name: make_step(m, x, mode == 'train', args.amp) for name, m in runners.items()}
            peak = {}
            if device.type == 'cuda':
                for name, step in steps.items():
                    torch.cuda.reset_peak_memory_stats()
                    step()
                    peak[name] = f'{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB'
            times = time_interleaved(steps, args.repeats, args.warmup, device.type == 'cuda')
            extra = {'params': params, 'saved for backward': saved_col}
            if peak:
                extra['peak'] = peak
            report(f'{mode}, {threads} thread(s)', times, args.batch_size, extra)


if __name__ == '__main__':
    run(main, 'benchmark.py', extra='analysis')
