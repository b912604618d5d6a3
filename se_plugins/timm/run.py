"""Run a timm script with the SE models registered, without editing it.

timm has no plugin entry points: a model is registered only when its module is imported.
timm's ``train.py`` can import one itself (``--device-modules se_plugins``); ``validate.py``,
``benchmark.py`` and ``inference.py`` cannot, so run them through this module::

    python -m se_plugins.timm.run validate.py --model se_resnet50_plugin --checkpoint best.pth.tar ...

It imports ``se_plugins`` and runs the script as ``python SCRIPT.py ARGS`` would
(``__name__ == '__main__'``, ``sys.argv[0]`` the script, its folder first on ``sys.path``).
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import Optional, Sequence

USAGE = 'usage: python -m se_plugins.timm.run SCRIPT.py [script arguments ...]'


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Import ``se_plugins``, then run ``argv[0]`` as ``__main__`` with ``argv`` as ``sys.argv``.

    Args:
        argv: The script path and its arguments; default ``sys.argv[1:]``.

    Raises:
        SystemExit: with the usage line when no script is given or it is not a file.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (['-h'], ['--help']):
        print(USAGE)
        return
    if not argv:
        raise SystemExit(USAGE)
    script = argv[0]
    if not os.path.isfile(script):
        raise SystemExit(f'se_plugins.timm.run: script {script!r} is not a file\n{USAGE}')
    import se_plugins  # noqa: F401  (registers the SE models in timm)

    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
