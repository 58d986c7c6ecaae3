"""Hard negatives from the corpus, with a false-negative guard, via sentence-transformers' miner."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

logger = logging.getLogger(__name__)


def passage(title: str | None, text: str) -> str:
    """The text an embedder sees for a document: its title line, then its body.

    >>> passage("json.dumps", "def dumps(obj): ...")
    'json.dumps\\ndef dumps(obj): ...'
    >>> passage("", "body")
    'body'
    """
    return f"{title}\n{text}" if title else text


def passages(docs: pl.DataFrame) -> list[str]:
    """``passage`` of every row of a frame with title and text columns, in row order.

    >>> passages(pl.DataFrame({"title": ["t", ""], "text": ["a", "b"]}))
    ['t\\na', 'b']
    """
    return [passage(title, text) for title, text in docs.select("title", "text").iter_rows()]


def mine_negatives(
    pairs: pl.DataFrame, corpus: list[str], model, cfg: dict[str, Any], query_prompt: str, batch_size: int
) -> tuple[pl.DataFrame, int]:
    """Add ``cfg['num_negatives']`` hard negatives to each (query, positive) pair.

    ``pairs`` has columns query, positive and doc_id. Candidates ranked between range_min and range_max
    are kept unless they score above the guard (relative: (1 - margin) * s(q, d+); absolute:
    s(q, d+) - margin). The miner silently drops pairs left without enough negatives: the second return
    value counts them.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    n = cfg["num_negatives"]
    dataset = Dataset.from_dict({"query": pairs["query"].to_list(), "positive": pairs["positive"].to_list()})
    mined = mine_hard_negatives(
        dataset,
        model,
        anchor_column_name="query",
        positive_column_name="positive",
        corpus=corpus,
        range_min=cfg["range_min"],
        range_max=cfg["range_max"],
        relative_margin=cfg["relative_margin"],
        absolute_margin=cfg["absolute_margin"],
        num_negatives=n,
        sampling_strategy=cfg["sampling_strategy"],
        query_prompt=query_prompt or None,
        output_format="n-tuple",
        batch_size=batch_size,
        verbose=True,
    )
    negative_columns = [f"negative_{i}" for i in range(1, n + 1)]
    schema = dict.fromkeys(["query", "positive", *negative_columns], pl.String)
    frame = pl.DataFrame(mined.to_dict(), schema=schema).select(
        pl.col("query"), pl.col("positive"), pl.concat_list(negative_columns).alias("negatives")
    )
    keyed = pairs.select("query", "positive", "doc_id").unique(subset=["query", "positive"], keep="first")
    result = frame.join(keyed, on=["query", "positive"], how="left", maintain_order="left")
    dropped = pairs.height - result.height
    logger.info(
        "mined %d pairs with %d negatives each; %d pairs left without enough negatives",
        result.height,
        n,
        dropped,
    )
    return result.select("doc_id", "query", "positive", "negatives"), dropped
