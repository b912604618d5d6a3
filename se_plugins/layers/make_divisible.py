"""The one squeeze-width rule shared by every SE layer in this package."""
from __future__ import annotations


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   min_ratio: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, as MMPretrain does.

    The result is at least ``min_value`` (default: ``divisor``) and never falls
    below ``min_ratio * value``; if rounding down would, one ``divisor`` is added.
    timm's ``make_divisible`` is the same rule with ``round_limit=0.9``; its SE
    layers call it with ``round_limit=0``, which gives the same widths for every
    ResNet stage because ``channels / 16`` is a multiple of 8 there.

    Args:
        value: The width to round, e.g. ``channels // ratio``.
        divisor: The multiple to round to.
        min_value: The smallest allowed result; ``None`` means ``divisor``.
        min_ratio: The smallest allowed ``result / value``.

    Returns:
        The rounded width.

    Examples:
        >>> make_divisible(64 // 16), make_divisible(2048 // 16), make_divisible(40 // 4)
        (8, 128, 16)
    """
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < min_ratio * value:
        new_value += divisor
    return new_value
