"""Reading by need: how many passages the reader reads at each step.

The reader's cost is almost all in reading passages, and most questions are settled by
the first few: the fused ranking usually puts the answering passage at the top. So the
reader reads the first ``first`` passages, and only when its best answer is not yet
settled (its calibrated score is below the fitted bound, see
:class:`rag.reader.scoring.Settle`) reads twice as many, up to the read depth. A
question the documents do not answer is read to the full depth, as before.

What is read never depends on the ``top_k`` a client asks for: the steps depend only on
the settings and on the reader's own scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rag.reader.scoring import Settle, SettleView

A = TypeVar("A", bound="SettleView")


def read_schedule(first: int, total: int) -> list[int]:
    """The passage counts read at each step: ``[2, 4, 8]`` for first 2 and total 8.

    ``first`` 0 (or at least ``total``) reads everything at once.
    """
    if total < 1:
        raise ValueError("the read depth must be at least 1")
    if first < 0:
        raise ValueError("the first step must not be negative")
    if first == 0 or first >= total:
        return [total]
    steps = [first]
    while steps[-1] * 2 < total:
        steps.append(steps[-1] * 2)
    steps.append(total)
    return steps


def until_settled(
    steps: Iterable[tuple[int, A | None]], settle: Settle | None
) -> tuple[int, A | None]:
    """(passages read, best answer) where the reading stops: the first step ``settle``
    calls settled, else the last. ``steps`` is consumed lazily, so the steps after the
    one that settles are never read; no ``settle`` reads every step."""
    read, best, previous = 0, None, None
    for read, best in steps:  # noqa: B007 - the last step read is the result
        if settle is not None and settle.stops(best, previous):
            break
        previous = best
    return read, best
