"""Importing the repository's scripts (``tools/``: files, not a package) in tests."""
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str) -> ModuleType:
    """Import the script at ``path`` (relative to the repository root), e.g. ``'tools/train.py'``."""
    name = 'script_' + path[:-len('.py')].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
