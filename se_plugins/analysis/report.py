"""Tables of analysis results: CSV and JSON written atomically, and a plain-text table."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Sequence, Union

__all__ = ['format_table', 'write_atomic', 'write_csv', 'write_json', 'write_text']

PathLike = Union[str, Path]


def write_atomic(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """``write(file)`` to a temporary file beside ``path``, then ``os.replace`` it into place.

    A reader sees the old file or the new one, never half of one. The file gets the
    permissions an ordinary ``open`` would give it (``mkstemp`` makes it owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


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
    """``obj`` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2) + '\n')


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
