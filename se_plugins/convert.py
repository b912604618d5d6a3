"""Checkpoint key maps between timm, MMPretrain and se_plugins: pure functions on state dicts.

Layouts (ResNet family; torchvision's plain ResNets use timm's layout):

- ``timm``: our ``se_*_plugin`` models, ``layer1.0.se.conv1.conv.weight`` ... ``fc.weight``.
  timm's own ``seresnet*`` keys (``layer1.0.se.fc1.weight``) are renamed on the way in.
- ``mmpretrain``: an ``ImageClassifier``, ``backbone.layer1.0.se_layer.conv1.conv.weight`` ...
  ``head.fc.weight``; the deep stem of ``ResNetV1c/V1d`` is ``backbone.stem.{0,1,2}.{conv,bn}``.
"""
from __future__ import annotations

import logging
import re
from typing import Dict, Iterable, Mapping

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]
FORMATS = ('timm', 'mmpretrain')
logger = logging.getLogger(__name__)

# timm's deep stem (conv1 = Sequential(conv, bn, act, conv, bn, act, conv), then bn1) and MMPretrain's.
_DEEP_STEM = {'conv1.0.': 'stem.0.conv.', 'conv1.1.': 'stem.0.bn.', 'conv1.3.': 'stem.1.conv.',
              'conv1.4.': 'stem.1.bn.', 'conv1.6.': 'stem.2.conv.', 'bn1.': 'stem.2.bn.'}
_TIMM_NATIVE_SE = (('.se.fc1.', '.se.conv1.conv.'), ('.se.fc2.', '.se.conv2.conv.'))
_DOWNSAMPLE = re.compile(r'^(layer\d+\.\d+\.downsample\.)(\d+)\.')
_LEGACY = ('layer0.', 'last_linear.')


class CheckpointError(ValueError):
    """A checkpoint that does not fit: its message lists the offending keys."""


def unwrap(checkpoint: Mapping) -> StateDict:
    """The state dict inside a saved object (mmengine's ``state_dict``, timm's ``state_dict``/``model``)."""
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    return {k.removeprefix('module.'): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


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
    if any(k.startswith(('conv1.', 'layer1.')) for k in state_dict):
        return 'timm'
    raise CheckpointError(f'not a ResNet-family checkpoint of timm, torchvision or MMPretrain; '
                          f'first keys: {list(state_dict)[:5]}')


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
    """Map a timm-layout ResNet/SE-ResNet state dict to an MMPretrain ``ImageClassifier``'s."""
    state_dict = from_timm_native(state_dict)
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
    """Map an MMPretrain ``ImageClassifier`` (ResNet family) state dict to timm's layout."""
    refuse_legacy(state_dict)
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


def is_se_key(key: str) -> bool:
    """Whether ``key`` belongs to an SE layer in either layout."""
    return '.se.' in key or '.se_layer.' in key


def fit_to_model(state_dict: Mapping, model_state: Mapping, new_ok: Iterable[str] = ()) -> StateDict:
    """Check ``state_dict`` against a model's, filling keys the checkpoint lacks where allowed.

    SE keys missing from the checkpoint (a plain ResNet checkpoint loaded into an SE
    model) keep the model's initial values and are logged by name. Any other
    difference raises :class:`CheckpointError` listing every key and shape.

    Args:
        state_dict: The checkpoint, already in the model's layout.
        model_state: ``model.state_dict()``.
        new_ok: Extra keys that may be missing (besides SE keys).
    """
    new_ok = set(new_ok)
    missing = [k for k in model_state if k not in state_dict]
    new = [k for k in missing if is_se_key(k) or k in new_ok]
    problems = [f'missing: {k} {tuple(model_state[k].shape)}' for k in missing if k not in new]
    problems += [f'unexpected: {k} {tuple(v.shape)}' for k, v in state_dict.items() if k not in model_state]
    problems += [f'shape: {k} checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
                 for k, v in state_dict.items() if k in model_state and v.shape != model_state[k].shape]
    if problems:
        raise CheckpointError(f'checkpoint does not fit the model ({len(problems)} problem(s); wrong '
                              'architecture, depth or width?):\n  ' + '\n  '.join(problems))
    if new:
        logger.warning('%d SE key(s) are not in the checkpoint and keep their initial values: %s',
                       len(new), ', '.join(new))
    return {**state_dict, **{k: model_state[k] for k in new}}


def timm_checkpoint_filter(state_dict: Mapping, model: nn.Module) -> StateDict:
    """timm ``pretrained_filter_fn``: timm, torchvision or MMPretrain weights into an ``se_*_plugin`` model."""
    state_dict = unwrap(state_dict)
    state_dict = convert(state_dict, 'timm') if state_dict else state_dict
    return fit_to_model(state_dict, model.state_dict())
