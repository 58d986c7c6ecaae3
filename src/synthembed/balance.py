"""Quotas per column and a seeded train/dev split with no document on both sides."""

from __future__ import annotations

import numpy as np
import polars as pl


def quota_targets(shares: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder integer targets that sum to ``total``.

    >>> quota_targets({"a": 0.5, "b": 0.25, "c": 0.25}, 10)
    {'a': 5, 'b': 3, 'c': 2}
    """
    labels = list(shares)
    weights = np.array([shares[k] for k in labels], dtype=float)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return dict(zip(labels, counts.tolist(), strict=True))


def apply_quota(
    frame: pl.DataFrame, column: str, shares: dict[str, float], max_total: int, seed: int
) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """Cap every group of ``column`` at its share of ``min(rows, max_total)``; rows of labels without a
    share are dropped, rows without a value (a control their task does not use) pass untouched.
    Returns the kept rows and, per label, target, available and kept counts."""
    untouched = frame.filter(pl.col(column).is_null())
    frame = frame.filter(pl.col(column).is_not_null())
    targets = quota_targets(shares, min(frame.height, max_total))
    parts, table = [untouched], {}
    for label, target in targets.items():
        group = frame.filter(pl.col(column) == label)
        kept = group.sample(n=min(target, group.height), seed=seed) if group.height else group
        parts.append(kept)
        table[label] = {"target": target, "available": group.height, "kept": kept.height}
    return pl.concat(parts), table


def split_by_document(frame: pl.DataFrame, dev_fraction: float, seed: int) -> pl.DataFrame:
    """Add a ``split`` column (train/dev) drawn per doc_id, so no document is on both sides."""
    doc_ids = sorted(frame["doc_id"].unique().to_list())
    rng = np.random.default_rng(seed)
    n_dev = round(len(doc_ids) * dev_fraction)
    dev = {doc_ids[i] for i in rng.permutation(len(doc_ids))[:n_dev]}
    split = pl.when(pl.col("doc_id").is_in(list(dev))).then(pl.lit("dev")).otherwise(pl.lit("train"))
    return frame.with_columns(split.alias("split"))


def structural_count(generated: int, available: int, share: float) -> int:
    """How many structural pairs make them ``share`` of the balanced set beside ``generated`` pairs,
    limited to the ``available`` ones.

    >>> structural_count(100, 1000, 0.8), structural_count(100, 50, 0.8), structural_count(100, 9, 0.0)
    (400, 50, 0)
    >>> structural_count(0, 30, 1.0)
    30
    """
    if share >= 1:
        return available
    return min(available, round(share / (1 - share) * generated))


def with_structural(frame: pl.DataFrame, structural: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """The generated pairs plus a seeded sample of structural pairs making ``share`` of the result.

    Structural pairs are retrieval pairs (query -> the text the query was taken from); every row says
    where it came from in ``generator``: ``llm`` or ``structural:<kind>``.
    """
    generated = frame.with_columns(pl.lit("llm").alias("generator"))
    n = structural_count(generated.height, structural.height, share)
    chosen = structural.sample(n=n, seed=seed) if n < structural.height else structural
    pseudo = chosen.select(
        "doc_id",
        pl.lit("retrieval").alias("task_type"),
        pl.col("query"),
        pl.col("query").alias("anchor"),
        "positive",
        pl.col("lang").alias("language"),
        pl.col("lang").alias("doc_language"),
        ("structural:" + pl.col("kind")).alias("generator"),
    )
    return pl.concat([generated, pseudo], how="diagonal_relaxed")
