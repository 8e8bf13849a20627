"""Progress on long calls: tqdm's notebook-aware bar when tqdm is
installed (``tqdm.auto``: a widget in Jupyter, text in a terminal), a
plain line on stderr otherwise; nothing when ``progress`` is false."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], total: Optional[int], desc: str, progress: bool) -> Iterator[T]:
    """Yields ``items``, showing how many of ``total`` are done."""
    if not progress:
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, desc=desc)
        return
    done = 0
    for item in items:
        yield item
        done += 1
        print(f"\r{desc}: {done}/{total if total is not None else '?'}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
