"""Running MMPretrain configs with mmengine's Runner: runtime fixes and pre-flight checks.

Used by ``tools/train.py`` and ``tools/test.py``; nothing here is applied at import time.
"""
from .compat import (allow_mmengine_checkpoints, init_cpu_distributed,
                     mmengine_checkpoint_globals, save_checkpoint_atomic, setup,
                     use_atomic_checkpoint_writes)

__all__ = ['allow_mmengine_checkpoints', 'init_cpu_distributed', 'mmengine_checkpoint_globals',
           'save_checkpoint_atomic', 'setup', 'use_atomic_checkpoint_writes']
