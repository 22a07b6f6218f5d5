"""Split a sequence into AWS request batches bounded by entry count and total size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")


def chunk_by_count_and_size(
    items: Iterable[Item], max_count: int, max_bytes: int, size_of: Callable[[Item], int]
) -> list[list[Item]]:
    """Group items in order, starting a new group before one would exceed either limit.

    An item larger than ``max_bytes`` on its own still gets a group of its own, so that the
    AWS service's response rejects it, instead of the item being dropped silently.
    """
    chunks: list[list[Item]] = []
    current: list[Item] = []
    current_bytes = 0
    for item in items:
        size = size_of(item)
        if current and (len(current) == max_count or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks
