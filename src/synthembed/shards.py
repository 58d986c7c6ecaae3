"""Scatter and gather: a stage's rows split into shards that run as separate jobs, and the shards'
outputs put back together exactly as one job would have written them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import polars as pl

T = TypeVar("T")


def shard_position(shard_ids: list[int], shard: int) -> tuple[int, int]:
    """(position of ``shard`` among the shards in params, number of shards).

    >>> shard_position([0, 1, 2], 2)
    (2, 3)
    """
    if shard not in shard_ids:
        raise ValueError(f"shard {shard} is not one of the shards in params: {shard_ids}")
    return shard_ids.index(shard), len(shard_ids)


def shard_rows(frame: pl.DataFrame, shard_ids: list[int], shard: int) -> pl.DataFrame:
    """The rows of one shard: row i belongs to the shard at position ``i % len(shard_ids)``.

    >>> frame = pl.DataFrame({"doc_id": list("abcde")})
    >>> shard_rows(frame, [0, 1], 1)["doc_id"].to_list()
    ['b', 'd']
    """
    position, count = shard_position(shard_ids, shard)
    return frame.gather_every(count, offset=position)


def shard_items(items: list[T], shard_ids: list[int], shard: int) -> list[T]:
    """The items of one shard, split as ``shard_rows`` splits rows.

    >>> shard_items(list(range(7)), [0, 1, 2], 1)
    [1, 4]
    """
    position, count = shard_position(shard_ids, shard)
    return items[position::count]


def interleave(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The inverse of ``shard_rows``: row j of part k back at position ``j * len(parts) + k``.

    >>> frame = pl.DataFrame({"doc_id": list("abcde")})
    >>> parts = [shard_rows(frame, [0, 1, 2], s) for s in (0, 1, 2)]
    >>> interleave(parts)["doc_id"].to_list()
    ['a', 'b', 'c', 'd', 'e']
    """
    count = len(parts)
    numbered = [
        part.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) * count + k).alias("_position"))
        for k, part in enumerate(parts)
    ]
    return pl.concat(numbered).sort("_position").drop("_position")


def shard_paths(folder: str | Path, shard_ids: list[int], suffix: str) -> list[Path]:
    """The files of the shards in params (a folder may still hold those of an earlier, larger split).

    >>> [p.name for p in shard_paths("results/shards/queries", [0, 1], ".json")]
    ['0.json', '1.json']
    """
    return [Path(folder) / f"{shard}{suffix}" for shard in shard_ids]


def gather_rows(parts: list[pl.DataFrame], order: list[str]) -> pl.DataFrame:
    """The shards' rows in one frame, ordered as one job writes them: by candidate, then by the
    position of the row's doc_id in ``order`` (the configuration rows).

    >>> parts = [pl.DataFrame({"doc_id": ["a", "c", "a"], "candidate": [0, 0, 1]}),
    ...          pl.DataFrame({"doc_id": ["b", "b"], "candidate": [0, 1]})]
    >>> gather_rows(parts, ["a", "b", "c"]).rows()
    [('a', 0), ('b', 0), ('c', 0), ('a', 1), ('b', 1)]
    """
    rank = {doc_id: i for i, doc_id in enumerate(order)}
    rows = pl.concat(parts)
    positions = pl.Series([rank[d] for d in rows["doc_id"]], dtype=pl.Int64)
    return rows.with_columns(positions.alias("_position")).sort("candidate", "_position").drop("_position")


def sum_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-shard statistics added up: numbers summed (costs rounded), dicts merged key by key.

    >>> sum_stats([{"read": 2, "failures": {"timeout": 1}, "cost": 0.1},
    ...            {"read": 3, "failures": {"http_500": 2}, "cost": 0.2}])
    {'read': 5, 'failures': {'timeout': 1, 'http_500': 2}, 'cost': 0.3}
    """
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                total[key] = sum_stats([total.get(key, {}), value])
            elif isinstance(value, float):
                total[key] = round(total.get(key, 0.0) + value, 6)
            else:
                total[key] = total.get(key, 0) + value
    return total
