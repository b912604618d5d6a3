"""How the tools end on a mistake of their user: one line on stderr and exit status 2, as argparse does.

A tool's ``__main__`` block is ``run(main, 'tool.py')``. Bad input is raised as :class:`InputError` where
it is read (a checkpoint, a config, a data folder, an output path), with a message that names the input,
says what is wrong and what would be right; an ``OSError`` of the file system counts as bad input too.
:func:`run` prints either as one line, ``TOOL: INPUT: what is wrong; what would be right``:

    convert_checkpoint.py: junk.pth: not a readable PyTorch checkpoint (empty, truncated or corrupted?); ...

Every other exception is a bug and shows its traceback. ``--debug`` (which :class:`ArgumentParser` gives
every tool) or ``SE_PLUGINS_DEBUG=1`` shows the traceback of bad input too.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn, Optional, Sequence

from .extras import required

__all__ = ['DEBUG_ENV', 'USER_ERRORS', 'ArgumentParser', 'InputError', 'about', 'describe', 'non_negative_float',
           'non_negative_int', 'positive_float', 'positive_int', 'probability', 'run']

DEBUG_ENV = 'SE_PLUGINS_DEBUG'


class InputError(ValueError):
    """A mistake in what the user gave a tool; the first line of the message is what the user sees.

    The message reads ``INPUT: what is wrong; what would be right``, where ``INPUT`` is the flag or path.
    Lines after the first are details, shown with the traceback (``--debug``).
    """


# What bad input causes; anything else is a bug and keeps its traceback.
USER_ERRORS = (InputError, OSError)


@contextmanager
def about(name: str) -> Iterator[None]:
    """Bad input raised in the block is about the input ``name``: its message starts with it.

    For checks that see a value but not where it came from (the keys of a checkpoint, not its
    path; a path, not the flag that gave it). The error keeps its type.

    >>> with about('model.pth'):
    ...     raise InputError('no ResNet keys')
    Traceback (most recent call last):
    ...
    se_plugins.cli.InputError: model.pth: no ResNet keys
    """
    try:
        yield
    except USER_ERRORS as err:
        if str(err).startswith(f'{name}:'):
            raise
        raise type(err)(f'{name}: {describe(err) if isinstance(err, OSError) else err}') from err


def describe(err: BaseException) -> str:
    """The one line that tells the user about ``err``.

    >>> describe(InputError("--to 'tim': unknown format\\nmore detail"))
    "--to 'tim': unknown format"
    >>> describe(NotADirectoryError(20, 'Not a directory', 'a.pth/out.pth'))
    'a.pth/out.pth: Not a directory'
    """
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        names = f'{err.filename} -> {err.filename2}' if err.filename2 is not None else str(err.filename)
        return f'{names}: {err.strerror}'
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def debugging(argv: Sequence[str]) -> bool:
    """Whether the user asked for tracebacks: ``--debug`` in ``argv`` or ``SE_PLUGINS_DEBUG`` set (not ``0``).

    argparse takes an unambiguous prefix for the option, so ``--deb`` counts too.

    >>> debugging(['model.pth', '--deb'])
    True
    """
    flag = any(len(arg) > 3 and '--debug'.startswith(arg) for arg in argv)
    return flag or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def run(main: Callable[[Sequence[str]], Any], tool: str, argv: Optional[Sequence[str]] = None,
        extra: Optional[str] = None) -> None:
    """Run ``main(argv)``; bad input ends it with one line ``TOOL: ...`` on stderr and exit status 2.

    Args:
        main: The tool's ``main``, taking the command line (without the program name).
        tool: The script's name, as the line starts (``'convert_checkpoint.py'``).
        argv: The command line; default ``sys.argv[1:]``.
        extra: The extra of se-plugins to name when a package is missing (see
            :func:`se_plugins.extras.required`).

    Raises:
        SystemExit: status 2, after the line on stderr.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if debugging(argv):
        main(argv)
        return
    try:
        with required(tool, extra):
            main(argv)
    except USER_ERRORS as err:
        sys.stdout.flush()
        print(f'{tool}: {describe(err)}', file=sys.stderr)
        raise SystemExit(2) from None


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``--debug``, whose usage errors are one line: ``PROG: MESSAGE``.

    argparse prints the usage before the error; ``--help`` shows it here. The exit status stays 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help=f'on an error, show its full traceback (as does {DEBUG_ENV}=1)')

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 and ``PROG: MESSAGE`` on stderr."""
        self.exit(2, f'{self.prog}: {message}\n')


def _number(kind: type, text: str, low: float, high: float = float('inf'), above: bool = False) -> Any:
    """``kind(text)`` if it lies in ``[low, high]`` (``(low, high]`` with ``above``), else an ArgumentTypeError."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is not None and not math.isfinite(value):  # NaN and inf
        value = None
    if value is None or not (low < value if above else low <= value) or not value <= high:
        what = 'an integer' if kind is int else 'a number'
        bounds = f'> {low}' if above else f'>= {low}'
        bounds += f' and <= {high}' if high != float('inf') else ''
        raise argparse.ArgumentTypeError(f'must be {what} {bounds}; got {text!r}')
    return value


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1.

    >>> positive_int('3')
    3
    >>> positive_int('0')
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer >= 1; got '0'
    """
    return _number(int, text, 1)


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 0."""
    return _number(int, text, 0)


def positive_float(text: str) -> float:
    """An ``argparse`` type: a number above 0 (not NaN)."""
    return _number(float, text, 0, above=True)


def non_negative_float(text: str) -> float:
    """An ``argparse`` type: a number of at least 0 (not NaN)."""
    return _number(float, text, 0)


def probability(text: str) -> float:
    """An ``argparse`` type: a number from 0 to 1.

    >>> probability('1.5')
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a number >= 0 and <= 1; got '1.5'
    """
    return _number(float, text, 0, 1)
