"""Checkpoint key maps between timm, MMPretrain and se_plugins: pure functions on state dicts.

Layouts (torchvision's plain ResNets use timm's layout):

- ``timm``: our ``se_*_plugin`` models. ResNet family: ``layer1.0.se.conv1.conv.weight`` ...
  ``fc.weight``; RegNet: ``stem.conv.weight``, ``s1.b1.se.conv1.conv.weight`` ... ``head.fc.weight``;
  ByobNet: ``stages.0.0.attn.conv1.conv.weight`` ... timm's own SE keys (``se.fc1``,
  ``attn.fc1``) are renamed on the way in.
- ``mmpretrain``: an ``ImageClassifier``, ``backbone.layer1.0.se_layer.conv1.conv.weight`` ...
  ``head.fc.weight``; the deep stem of ``ResNetV1c/V1d`` is ``backbone.stem.{0,1,2}.{conv,bn}``;
  RegNet's SE is ``backbone.layer1.0.se_3x3_act``.

Families: ``resnet`` (both frameworks), ``regnet`` (both), ``byobnet`` (timm only). timm
ResNets with a tiered stem or 3x3 shortcut convs (``*t``, ``senet154``) have no MMPretrain
counterpart and are refused; anti-aliased ones (``*aa*``) have the keys of a ResNet-D, so only
their name tells (:func:`refuse_no_counterpart`).
"""
from __future__ import annotations

import fnmatch
import logging
import re
from typing import Dict, Iterable, Mapping

import torch
from torch import nn

from .cli import InputError

StateDict = Dict[str, torch.Tensor]
FORMATS = ('timm', 'mmpretrain')
logger = logging.getLogger(__name__)

# timm's deep stem (conv1 = Sequential(conv, bn, act, conv, bn, act, conv), then bn1) and MMPretrain's.
_DEEP_STEM = {'conv1.0.': 'stem.0.conv.', 'conv1.1.': 'stem.0.bn.', 'conv1.3.': 'stem.1.conv.',
              'conv1.4.': 'stem.1.bn.', 'conv1.6.': 'stem.2.conv.', 'bn1.': 'stem.2.bn.'}
_TIMM_NATIVE_SE = (('.se.fc1.', '.se.conv1.conv.'), ('.se.fc2.', '.se.conv2.conv.'),
                   ('.attn.fc1.', '.attn.conv1.conv.'), ('.attn.fc2.', '.attn.conv2.conv.'))
# timm RegNet block part -> MMPretrain RegNet (ResNeXt bottleneck) part; the stem likewise.
_REGNET_PARTS = (('conv1.conv.', 'conv1.'), ('conv1.bn.', 'bn1.'), ('conv2.conv.', 'conv2.'), ('conv2.bn.', 'bn2.'),
                 ('conv3.conv.', 'conv3.'), ('conv3.bn.', 'bn3.'), ('downsample.conv.', 'downsample.0.'),
                 ('downsample.bn.', 'downsample.1.'), ('se.', 'se_3x3_act.'), ('se_last.', 'se_layer.'))
_REGNET_STEM = (('stem.conv.', 'conv1.'), ('stem.bn.', 'bn1.'))
_TIMM_REGNET_BLOCK = re.compile(r'^s(\d+)\.b(\d+)\.')
_MM_BLOCK = re.compile(r'^layer(\d+)\.(\d+)\.')
# Name patterns of timm models whose MMPretrain counterpart does not exist, and why.
_AA, _TIERED = 'anti-aliased downsampling (an average pool after a stride-1 3x3 conv)', 'a tiered deep stem'
_SENET, _BYOB = '3x3 shortcut convs and a 64-64-128 deep stem', "timm's ByobNet blocks"
NO_MMPRETRAIN = {'*resnetaa*': _AA, '*resnextaa*': _AA, '*resnet50t*': _TIERED, '*resnext26t_*': _TIERED,
                 '*senet154*': _SENET, 'se_net154*': _SENET, '*33ts*': _BYOB, '*26ts*': _BYOB}
_DOWNSAMPLE = re.compile(r'^(layer\d+\.\d+\.downsample\.)(\d+)\.')
_LEGACY = ('layer0.', 'last_linear.')


class CheckpointError(InputError):
    """A checkpoint that cannot be read or does not fit: its message names the offending keys."""


def unwrap(checkpoint: Mapping) -> StateDict:
    """The state dict inside a saved object (mmengine's ``state_dict``, timm's ``state_dict``/``model``)."""
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    return {k.removeprefix('module.'): v for k, v in checkpoint.items()
            if isinstance(k, str) and isinstance(v, torch.Tensor)}


def refuse_legacy(state_dict: Mapping) -> None:
    """Refuse timm's ``legacy_se*`` (Caffe-ported) weights, which need a different block layout."""
    if any(k.startswith(_LEGACY) or '.se_module.' in k for k in state_dict):
        raise CheckpointError(
            'this is a legacy Caffe-ported SENet checkpoint (timm legacy_seresnet*/legacy_seresnext*: keys '
            'layer0.*, *.se_module.*, last_linear.*). Those networks put the stride on the first 1x1 conv of '
            'each bottleneck, while timm, MMPretrain and se_plugins put it on the 3x3 conv: the weights would '
            'load after renaming but the network would compute something else. Use a non-legacy checkpoint '
            '(timm seresnet*/seresnext*) or timm.create_model("legacy_...") itself.')


def detect_format(state_dict: Mapping) -> str:
    """``'timm'`` or ``'mmpretrain'``, from the keys."""
    refuse_legacy(state_dict)
    if any(k.startswith('backbone.') for k in state_dict):
        return 'mmpretrain'
    if any(k.startswith(('conv1.', 'layer1.', 's1.b1.', 'stages.0.')) for k in state_dict):
        return 'timm'
    raise CheckpointError(f'not a ResNet, RegNet or ByobNet checkpoint of timm, torchvision or MMPretrain; '
                          f'first keys: {list(state_dict)[:5]}')


def detect_family(state_dict: Mapping) -> str:
    """``'resnet'``, ``'regnet'`` or ``'byobnet'``, from the keys (and, for MMPretrain, the shapes).

    An MMPretrain RegNet has ResNeXt's keys, but a 3x3 stem conv and square 1x1 ``conv3`` weights
    (its bottlenecks do not expand).
    """
    if any(k.startswith('stages.0.') for k in state_dict):
        return 'byobnet'
    if any(k.startswith('s1.b1.') for k in state_dict):
        return 'regnet'
    stem, conv3 = state_dict.get('backbone.conv1.weight'), state_dict.get('backbone.layer1.0.conv3.weight')
    if stem is not None and conv3 is not None and stem.shape[-1] == 3 and conv3.shape[0] == conv3.shape[1]:
        return 'regnet'
    return 'resnet'


def refuse_no_counterpart(name: str) -> None:
    """Refuse converting timm model ``name`` (or its twin) to MMPretrain where MMPretrain has no such network."""
    reason = next((why for pattern, why in NO_MMPRETRAIN.items() if fnmatch.fnmatch(name, pattern)), None)
    if reason is not None:
        raise CheckpointError(f'{name} has no MMPretrain counterpart: MMPretrain\'s backbones have no {reason}. '
                              'Its weights stay in timm (se_*_plugin models load them).')


def _refuse_unmappable_resnet(state_dict: Mapping) -> None:
    """Refuse timm ResNets whose keys show a part MMPretrain's ResNets lack (tiered stem, 3x3 shortcut)."""
    first, second = state_dict.get('conv1.0.weight'), state_dict.get('conv1.3.weight')
    if first is not None and second is not None and first.shape[0] != second.shape[0]:
        raise CheckpointError(f'a tiered deep stem ({first.shape[0]}, {second.shape[0]}, ... channels: timm '
                              "seresnet50t, seresnext26t_32x4d) has no MMPretrain counterpart: MMPretrain's deep "
                              'stem has equal first widths. Its weights stay in timm.')
    if any(_DOWNSAMPLE.match(k) and v.dim() == 4 and v.shape[-1] == 3 for k, v in state_dict.items()):
        raise CheckpointError("3x3 shortcut convs (timm senet154) have no MMPretrain counterpart: MMPretrain's "
                              'ResNets project the shortcut with a 1x1 conv. Its weights stay in timm.')


def _regnet_key(key: str, to: str) -> str:
    """One RegNet key in the ``to`` layout (``s2.b1.conv2.bn.weight`` <-> ``backbone.layer2.0.bn2.weight``)."""
    if key.startswith('head.fc.'):
        return key
    if to == 'mmpretrain':
        m = _TIMM_REGNET_BLOCK.match(key)
        if m:
            prefix, rest, parts = f'backbone.layer{m[1]}.{int(m[2]) - 1}.', key[m.end():], _REGNET_PARTS
        elif key.startswith('stem.'):
            prefix, rest, parts = 'backbone.', key, _REGNET_STEM
        else:
            raise CheckpointError(f'cannot map timm RegNet key {key!r} to MMPretrain: only stem.*, sX.bY.* and '
                                  'head.fc.* are known (RegNetY; not RegNetZ/V)')
    else:
        if not key.startswith('backbone.'):
            raise CheckpointError(f'cannot map MMPretrain key {key!r} to timm: only backbone.* and head.fc.* are '
                                  'known (neck and head must be GlobalAveragePooling + LinearClsHead)')
        key = key.removeprefix('backbone.')
        m = _MM_BLOCK.match(key)
        if m:
            prefix, rest, parts = f's{m[1]}.b{int(m[2]) + 1}.', key[m.end():], [(b, a) for a, b in _REGNET_PARTS]
        else:
            prefix, rest, parts = '', key, [(b, a) for a, b in _REGNET_STEM]
    return prefix + next((new + rest[len(old):] for old, new in parts if rest.startswith(old)), rest)


def from_timm_native(state_dict: Mapping) -> StateDict:
    """Rename timm's own SE keys (``se.fc1``/``se.fc2``) to ours (``se.conv1.conv``/``se.conv2.conv``)."""
    refuse_legacy(state_dict)
    renamed = {}
    for key, value in state_dict.items():
        for old, new in _TIMM_NATIVE_SE:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


def _avg_down_blocks(state_dict: Mapping, pool_slot: bool) -> set:
    """Downsample prefixes laid out as (pool, conv, bn) in an avg-down network.

    With ``pool_slot`` (timm) the stride-1 downsample keeps an ``Identity`` in slot 0;
    MMPretrain has no pool there, so its conv sits in slot 0.
    """
    convs = {m.group(1): int(m.group(2)) for k, v in state_dict.items()
             if (m := _DOWNSAMPLE.match(k)) and k.endswith('.weight') and v.dim() == 4}
    if not any(slot == 1 for slot in convs.values()):
        return set()
    return {prefix for prefix, slot in convs.items() if slot == (1 if pool_slot else 0)}


def _shift_downsample(key: str, blocks: set, shift: int) -> str:
    m = _DOWNSAMPLE.match(key)
    if m and m.group(1) in blocks:
        return f'{m.group(1)}{int(m.group(2)) + shift}.' + key[m.end():]
    return key


def timm_to_mmpretrain(state_dict: Mapping) -> StateDict:
    """Map a timm-layout ResNet/RegNet state dict (SE or not) to an MMPretrain ``ImageClassifier``'s."""
    state_dict = from_timm_native(state_dict)
    family = detect_family(state_dict)
    if family == 'byobnet':
        raise CheckpointError("timm's ByobNet (seresnet33ts, seresnext26ts and their se_*_plugin twins) has no "
                              'MMPretrain counterpart. Its weights stay in timm.')
    if family == 'regnet':
        return {_regnet_key(k, 'mmpretrain'): v for k, v in state_dict.items()}
    _refuse_unmappable_resnet(state_dict)
    deep_stem = 'conv1.0.weight' in state_dict
    stride1 = {p for p in _avg_down_blocks(state_dict, pool_slot=True) if p.startswith('layer1.')}
    out = {}
    for key, value in state_dict.items():
        if key.startswith('fc.'):
            out['head.' + key] = value
            continue
        if deep_stem:
            key = next((new + key[len(old):] for old, new in _DEEP_STEM.items() if key.startswith(old)), key)
        key = _shift_downsample(key, stride1, -1).replace('.se.', '.se_layer.')
        out['backbone.' + key] = value
    return out


def mmpretrain_to_timm(state_dict: Mapping) -> StateDict:
    """Map an MMPretrain ``ImageClassifier`` (ResNet family or RegNet) state dict to timm's layout."""
    refuse_legacy(state_dict)
    if detect_family(state_dict) == 'regnet':
        return {_regnet_key(k, 'timm'): v for k, v in state_dict.items()}
    stem = {new: old for old, new in _DEEP_STEM.items()}
    backbone = {k.removeprefix('backbone.'): v for k, v in state_dict.items() if k.startswith('backbone.')}
    no_pool = {p for p in _avg_down_blocks(backbone, pool_slot=False) if p.startswith('layer1.')}
    out = {}
    for key, value in state_dict.items():
        if key.startswith('head.fc.'):
            out[key.removeprefix('head.')] = value
            continue
        if not key.startswith('backbone.'):
            raise CheckpointError(f'cannot map MMPretrain key {key!r} to timm: only backbone.* and head.fc.* are '
                                  'known (neck and head must be GlobalAveragePooling + LinearClsHead)')
        key = key.removeprefix('backbone.')
        key = next((new + key[len(old):] for old, new in stem.items() if key.startswith(old)), key)
        out[_shift_downsample(key, no_pool, +1).replace('.se_layer.', '.se.')] = value
    return out


def convert(state_dict: Mapping, to: str) -> StateDict:
    """Convert ``state_dict`` (format detected) to ``to``, one of ``'timm'``, ``'mmpretrain'``."""
    if to not in FORMATS:
        raise ValueError(f"'to' must be one of {FORMATS}; got {to!r}")
    source = detect_format(state_dict)
    if source == to:
        return from_timm_native(state_dict) if to == 'timm' else dict(state_dict)
    return timm_to_mmpretrain(state_dict) if to == 'mmpretrain' else mmpretrain_to_timm(state_dict)


_SE_KEY = re.compile(r'\.(se|se_\w+|attn|attn_last)\.')  # every SE attribute of placement's layouts


def is_se_key(key: str) -> bool:
    """Whether ``key`` belongs to an SE layer in either layout (at any se_cfg position)."""
    return _SE_KEY.search(key) is not None


def fit_to_model(state_dict: Mapping, model_state: Mapping, new_ok: Iterable[str] = (),
                 strict: bool = False) -> StateDict:
    """Check ``state_dict`` against a model's, filling keys the checkpoint lacks where allowed.

    SE keys missing from the checkpoint (a plain ResNet checkpoint loaded into an SE
    model) keep the model's initial values and are logged by name. Any other
    difference raises :class:`CheckpointError` listing every key and shape.

    Args:
        state_dict: The checkpoint, already in the model's layout.
        model_state: ``model.state_dict()``.
        new_ok: Extra keys that may be missing (besides SE keys).
        strict: No key may be missing, SE keys included, and every tensor must hold numbers the model can use
            (a trained model to test or analyse: no NaN, no integers for floats, no meta or sparse tensors).
    """
    new_ok = set(new_ok)
    missing = [k for k in model_state if k not in state_dict]
    new = [] if strict else [k for k in missing if is_se_key(k) or k in new_ok]
    problems = [f'missing: {k} {tuple(model_state[k].shape)}' for k in missing if k not in new]
    problems += [f'unexpected: {k} {tuple(v.shape)}' for k, v in state_dict.items() if k not in model_state]
    problems += [f'shape: {k} checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
                 for k, v in state_dict.items() if k in model_state and v.shape != model_state[k].shape]
    if problems:
        raise CheckpointError(f'checkpoint does not fit the model ({len(problems)} problem(s), e.g. {problems[0]}); '
                              'wrong architecture, depth or width?\n  ' + '\n  '.join(problems))
    unusable = [p for p in (_unusable(k, v, model_state[k]) for k, v in state_dict.items()) if p] if strict else []
    if unusable:
        raise CheckpointError(f'checkpoint holds tensors the model cannot use ({len(unusable)} problem(s), e.g. '
                              f'{unusable[0]}); give the weights of a run that trained (model.state_dict())'
                              '\n  ' + '\n  '.join(unusable))
    if new:
        logger.warning('%d SE key(s) are not in the checkpoint and keep their initial values: %s',
                       len(new), ', '.join(new))
    return {**state_dict, **{k: model_state[k] for k in new}}


def _unusable(key: str, value: torch.Tensor, model_value: torch.Tensor) -> str:
    """What makes ``value`` unusable as the model's ``key`` ('' if nothing): no data, integers, NaN/inf."""
    if value.is_meta or value.layout != torch.strided:
        return f'{key} is a {"meta" if value.is_meta else str(value.layout)} tensor, with no dense values'
    if model_value.is_floating_point() and not value.is_floating_point():
        return f'{key} holds {value.dtype}, not floating-point numbers'
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return f'{key} holds NaN or inf (a diverged run?)'
    return ''


def timm_checkpoint_filter(state_dict: Mapping, model: nn.Module) -> StateDict:
    """timm ``pretrained_filter_fn``: timm, torchvision or MMPretrain weights into an ``se_*_plugin`` model."""
    state_dict = unwrap(state_dict)
    state_dict = convert(state_dict, 'timm') if state_dict else state_dict
    return fit_to_model(state_dict, model.state_dict())
