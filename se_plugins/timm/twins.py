"""Twins of timm's SE models: their pretrained tags, and entrypoints registered from a table."""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from timm.models import get_arch_pretrained_cfgs, register_model


def timm_tags(twin: str, source: str) -> Dict[str, Dict[str, Any]]:
    """Every pretrained tag timm has for ``source``, as tags of ``twin`` (``seresnet50.a1_in1k`` -> ``<twin>.a1_in1k``).

    Each keeps timm's pretrained_cfg (hub id, url, input and test sizes, crop, mean/std, first
    conv, classifier); the checkpoint filter renames timm's SE keys to ours on load.
    """
    tags = {}
    for name, cfg in get_arch_pretrained_cfgs(source).items():
        fields = {k: v for k, v in cfg.to_dict().items() if v is not None and k not in ('architecture', 'tag')}
        tags[f'{twin}.{name.partition(".")[2]}'] = fields
    return tags


def se_cfg_over(defaults: Mapping[str, Any], se_cfg: Any) -> Any:
    """A twin's ``se_cfg``: the user's keys over the SE of its timm source (``defaults``).

    An ``SEConfig`` is taken as it is; any other value goes on to ``SEConfig.build``, which
    names what is wrong with it.
    """
    if se_cfg is None:
        return dict(defaults)
    return {**defaults, **se_cfg} if isinstance(se_cfg, Mapping) else se_cfg


def register_twins(module: str, sources: Mapping[str, str], create: Callable[..., Any], doc: str) -> Dict[str, Any]:
    """Register one entrypoint per twin of ``sources`` (twin -> timm source), as ``@register_model`` does.

    Each entrypoint is ``twin(pretrained=False, se_cfg=None, **kwargs)`` calling
    ``create(twin, pretrained, se_cfg, **kwargs)``; ``doc`` is formatted with ``source``.
    Returns them by name, for the module's globals.
    """
    entrypoints = {}
    for twin, source in sources.items():
        def entrypoint(pretrained: bool = False, se_cfg: Optional[Any] = None, _twin: str = twin,
                       **kwargs: Any) -> Any:
            return create(_twin, pretrained, se_cfg, **kwargs)
        entrypoint.__name__ = entrypoint.__qualname__ = twin
        entrypoint.__module__, entrypoint.__doc__ = module, doc.format(source=source)
        entrypoints[twin] = register_model(entrypoint)
    return entrypoints
