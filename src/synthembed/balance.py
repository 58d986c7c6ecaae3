"""Quotas per column and a seeded train/dev split with no document on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from synthembed.io import CHUNK_ROWS


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
) -> tuple[pl.DataFrame, dict[str, dict[str, int]], int]:
    """Cap every label of ``column`` at its share of the rows considered: those of ``frame`` whose label
    has a share, at most ``max_total`` of them (``quota_targets``; a label with fewer rows than its
    target keeps them all and leaves its room unused). A seeded sample of each label is kept. Rows whose
    label has no share are dropped; rows without a value (a control their task does not use) pass
    untouched. Returns the kept rows, per label its target, available and kept counts, and how many
    rows were dropped for a label without a share.

    >>> frame = pl.DataFrame({"kind": ["a"] * 6 + ["b"] * 2 + ["c", None]})
    >>> kept, table, no_quota = apply_quota(frame, "kind", {"a": 0.5, "b": 0.5}, max_total=100, seed=0)
    >>> table, no_quota, kept["kind"].to_list().count("a"), kept["kind"].null_count()
    ({'a': {'target': 4, 'available': 6, 'kept': 4}, 'b': {'target': 4, 'available': 2, 'kept': 2}}, 1, 4, 1)
    """
    untouched = frame.filter(pl.col(column).is_null())
    considered = frame.filter(pl.col(column).is_in(list(shares)))
    no_quota = frame.height - untouched.height - considered.height
    targets = quota_targets(shares, min(considered.height, max_total))
    parts, table = [untouched], {}
    for label, target in targets.items():
        group = considered.filter(pl.col(column) == label)
        kept = group.sample(n=min(target, group.height), seed=seed) if group.height else group
        parts.append(kept)
        table[label] = {"target": target, "available": group.height, "kept": kept.height}
    return pl.concat(parts), table, no_quota


def split_by_document(frame: pl.DataFrame, dev_fraction: float, seed: int) -> pl.DataFrame:
    """Add a ``split`` column (train/dev) drawn per doc_id, so no document is on both sides."""
    doc_ids = frame["doc_id"].unique().sort()
    rng = np.random.default_rng(seed)
    n_dev = round(len(doc_ids) * dev_fraction)
    dev = doc_ids.gather(rng.permutation(len(doc_ids))[:n_dev])
    split = pl.when(pl.col("doc_id").is_in(dev.implode())).then(pl.lit("dev")).otherwise(pl.lit("train"))
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


def structural_rows(structural: pl.DataFrame) -> pl.DataFrame:
    """Structural pairs as balanced rows: retrieval pairs (query -> the text the query was taken from)
    whose ``generator`` is ``structural:<kind>``."""
    return structural.select(
        "doc_id",
        pl.lit("retrieval").alias("task_type"),
        pl.col("query"),
        pl.col("query").alias("anchor"),
        "positive",
        pl.col("lang").alias("language"),
        pl.col("lang").alias("doc_language"),
        ("structural:" + pl.col("kind")).alias("generator"),
    )


def structural_sample(structural: pl.DataFrame, generated: int, share: float, seed: int) -> pl.DataFrame:
    """A seeded sample of the structural pairs making them ``share`` of the set beside ``generated``
    pairs (``structural_count``).

    >>> structural_sample(pl.DataFrame({"kind": ["title"] * 5}), generated=4, share=0.5, seed=0).height
    4
    """
    n = structural_count(generated, structural.height, share)
    return structural.sample(n=n, seed=seed) if n < structural.height else structural


def with_structural(frame: pl.DataFrame, structural: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """The generated pairs plus ``structural_sample`` as balanced rows, in memory (the train ablation's
    variants; the stage plans on key columns with ``balance_plan``); every row says where it came from in
    ``generator``: ``llm`` or ``structural:<kind>``.
    """
    generated = frame.with_columns(pl.lit("llm").alias("generator"))
    chosen = structural_sample(structural, generated.height, share, seed)
    return pl.concat([generated, structural_rows(chosen)], how="diagonal_relaxed")


def balance_plan(
    filtered: pl.DataFrame, structural: pl.DataFrame, cfg: dict[str, Any], seed: int
) -> tuple[pl.DataFrame, dict[str, dict[str, dict[str, int]]], dict[str, int]]:
    """Which rows the balanced set has, decided on key columns only: ``filtered`` holds doc_id, query and
    the quota columns of the filtered pairs, ``structural`` doc_id, query and kind of the structural
    pairs, each with its ``row`` number in its file. The quotas apply column after column
    (``apply_quota``), each to the rows the previous ones kept. Returns the plan (source, row, doc_id,
    query, generator, split) in output order (doc_id, then query), the quota tables, and the filtered
    pairs left out by reason: ``over_quota`` (their label's target was reached) and ``no_quota`` (their
    label has no share).

    >>> filtered = pl.DataFrame({"row": [0, 1], "doc_id": ["b", "a"], "query": ["q1", "q2"],
    ...                          "task_type": ["sts", "sts"]})
    >>> structural = pl.DataFrame({"row": [0], "doc_id": ["a"], "query": ["title"], "kind": ["title"]})
    >>> cfg = {"quotas": {"task_type": {"sts": 1.0}}, "max_pairs": 10, "structural_share": 0.5,
    ...        "dev_fraction": 0.0}
    >>> balance_plan(filtered, structural, cfg, seed=0)[0].select("source", "row", "generator").rows()
    [('llm', 1, 'llm'), ('structural', 0, 'structural:title'), ('llm', 0, 'llm')]
    """
    quota_tables, left_out = {}, {"over_quota": 0, "no_quota": 0}
    for column, shares in cfg["quotas"].items():
        before = filtered.height
        filtered, quota_tables[column], no_quota = apply_quota(
            filtered, column, shares, cfg["max_pairs"], seed
        )
        left_out["no_quota"] += no_quota
        left_out["over_quota"] += before - filtered.height - no_quota
    chosen = structural_sample(structural, filtered.height, cfg["structural_share"], seed)
    columns = ["source", "row", "doc_id", "query", "generator"]
    plan = pl.concat(
        [
            filtered.with_columns(source=pl.lit("llm"), generator=pl.lit("llm")).select(columns),
            chosen.with_columns(source=pl.lit("structural"), generator="structural:" + pl.col("kind")).select(
                columns
            ),
        ]
    ).sort("doc_id", "query", maintain_order=True)
    return split_by_document(plan, cfg["dev_fraction"], seed), quota_tables, left_out


def balanced_schema(filtered: Path) -> dict[str, pl.DataType]:
    """The columns of the balanced file: the filtered pairs' and where each row came from."""
    return dict(pl.scan_parquet(filtered).collect_schema()) | {"generator": pl.String, "split": pl.String}


def balanced_slices(
    plan: pl.DataFrame, filtered: Path, structural: Path, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pl.DataFrame]:
    """The planned rows read from their files in plan order, one slice of ``chunk_rows`` at a time:
    memory holds a slice, not the pairs. Structural rows leave empty the columns they lack."""
    sources = {"llm": pl.scan_parquet(filtered), "structural": pl.scan_parquet(structural)}
    for start in range(0, plan.height, chunk_rows):
        part = plan.slice(start, chunk_rows)
        rows = []
        for source, scan in sources.items():
            wanted = part.filter(pl.col("source") == source)["row"].implode()
            found = scan.with_row_index("row").filter(pl.col("row").is_in(wanted)).collect(engine="streaming")
            if source == "structural":
                found = pl.concat(
                    [found.select("row"), structural_rows(found).drop("generator")], how="horizontal"
                )
            rows.append(found.with_columns(pl.lit(source).alias("source"), pl.col("row").cast(pl.Int64)))
        yield part.select("source", "row", "generator", "split").join(
            pl.concat(rows, how="diagonal_relaxed"), on=["source", "row"], how="left", maintain_order="left"
        )
