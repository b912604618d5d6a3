"""Which extra of se-plugins installs each optional dependency of the tools, and one line when one is missing.

A tool wraps its imports in :func:`required` (and :func:`se_plugins.cli.run` its ``main()``, for imports
made on the way); a missing package that an extra provides then ends it with one line on stderr and exit
status 2, no traceback:

    complexity.py needs fvcore: pip install -e ".[analysis]"
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

__all__ = ['EXTRAS', 'required']

# Top-level import name -> the extra (pyproject.toml) that installs it.
EXTRAS: Dict[str, str] = {
    'timm': 'timm', 'torchvision': 'timm', 'yaml': 'timm',
    'mmengine': 'mmpretrain', 'mmcv': 'mmpretrain', 'mmpretrain': 'mmpretrain',
    'fvcore': 'analysis', 'matplotlib': 'analysis', 'tqdm': 'analysis',
    'sklearn': 'demo', 'PIL': 'demo',
}


@contextmanager
def required(tool: str, extra: Optional[str] = None) -> Iterator[None]:
    """Turn a ``ModuleNotFoundError`` of a package in :data:`EXTRAS` into one line and exit status 2.

    Args:
        tool: The script's name, as the line starts (``'complexity.py'``).
        extra: The extra to name instead of the package's own (e.g. ``'demo'``, which has them all).

    Raises:
        SystemExit: status 2, after the line on stderr. Any other ``ModuleNotFoundError`` (a module
            missing inside an installed package) is raised as it is.
    """
    try:
        yield
    except ModuleNotFoundError as err:
        package = (err.name or '').partition('.')[0]
        if package not in EXTRAS or err.name != package:
            raise
        print(f'{tool} needs {package}: pip install -e ".[{extra or EXTRAS[package]}]"', file=sys.stderr)
        raise SystemExit(2) from None
