"""Tables of analysis results: CSV and JSON written atomically, and a plain-text table."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..io import PathLike, write_atomic

__all__ = ['finite', 'format_table', 'write_atomic', 'write_csv', 'write_json', 'write_text']


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda f: f.write(text.encode()))


def write_csv(path: PathLike, rows: List[Dict[str, Any]]) -> Path:
    """Rows of equal keys as CSV, a header first."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, out.getvalue())


def write_json(path: PathLike, obj: Any) -> Path:
    """``obj`` as indented, strict JSON: a NaN or infinite number is written as ``null``."""
    return write_text(path, json.dumps(finite(obj), indent=2, allow_nan=False) + '\n')


def finite(obj: Any) -> Any:
    """``obj`` with every float that is not finite (in dicts, lists and tuples) replaced by None.

    >>> finite({'loss': float('nan'), 'top1': [1.0, float('inf')]})
    {'loss': None, 'top1': [1.0, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def format_table(rows: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    """``columns`` of ``rows`` as an aligned text table; floats with 4 decimals.

    >>> print(format_table([{'a': 'x', 'b': 0.5}], ['a', 'b']))
    a  b
    x  0.5000
    """
    cells = [[f'{row[c]:.4f}' if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [list(columns)] + cells
    return '\n'.join('  '.join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)
