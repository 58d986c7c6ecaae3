"""Hard negatives: mined from the corpus with a false-negative guard (sentence-transformers' miner),
other labels for classification pairs, and the generator's own for code documents."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
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
    """Add ``cfg['num_negatives']`` hard negatives from ``corpus`` to each (anchor, positive) pair.

    ``pairs`` has columns anchor and positive; its other columns are kept. Candidates ranked between
    range_min and range_max are kept unless they score above the guard (relative: (1 - margin) *
    s(q, d+); absolute: s(q, d+) - margin). The miner silently drops pairs left without enough
    negatives: the second return value counts them.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    n = cfg["num_negatives"]
    if pairs.is_empty():
        return pairs.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("negatives")), 0
    dataset = Dataset.from_dict(
        {"anchor": pairs["anchor"].to_list(), "positive": pairs["positive"].to_list()}
    )
    mined = mine_hard_negatives(
        dataset,
        model,
        anchor_column_name="anchor",
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
    schema = dict.fromkeys(["anchor", "positive", *negative_columns], pl.String)
    frame = pl.DataFrame(mined.to_dict(), schema=schema).select(
        pl.col("anchor"), pl.col("positive"), pl.concat_list(negative_columns).alias("negatives")
    )
    keyed = pairs.unique(subset=["anchor", "positive"], keep="first", maintain_order=True)
    result = frame.join(keyed, on=["anchor", "positive"], how="left", maintain_order="left")
    dropped = pairs.height - result.height
    logger.info(
        "mined %d pairs with %d negatives each; %d pairs left without enough negatives",
        result.height,
        n,
        dropped,
    )
    return result.select(*pairs.columns, "negatives"), dropped


def label_negatives(
    pairs: pl.DataFrame, model, num_negatives: int, batch_size: int
) -> tuple[pl.DataFrame, int]:
    """Hard negatives of classification pairs: the label texts of other labels that score highest
    against the document. Pairs with fewer than ``num_negatives`` other labels are dropped and counted.

    ``pairs`` has columns anchor (the document), positive (its "label: description") and label.
    """
    if pairs.is_empty():
        return pairs.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("negatives")), 0
    options = pairs.select("label", "positive").unique(subset="label", keep="first", maintain_order=True)
    label_names, label_texts = options["label"].to_list(), options["positive"].to_list()
    anchors = model.encode_document(
        pairs["anchor"].to_list(), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    labels = model.encode_document(
        label_texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    ranked = np.argsort(-(anchors @ labels.T), axis=1, kind="stable")
    negatives = [
        [label_texts[j] for j in order if label_names[j] != own][:num_negatives]
        for order, own in zip(ranked, pairs["label"], strict=True)
    ]
    result = pairs.with_columns(pl.Series("negatives", negatives, dtype=pl.List(pl.String)))
    enough = result.filter(pl.col("negatives").list.len() == num_negatives)
    return enough, result.height - enough.height


def with_llm_negatives(pairs: pl.DataFrame) -> pl.DataFrame:
    """Put a pair's generator-written negative (code documents) first among its negatives, in place
    of the last mined one, so every pair keeps the same count.

    >>> pairs = pl.DataFrame({"negatives": [["m1", "m2"], ["m3", "m4"]], "llm_negative": ["g1", None]})
    >>> with_llm_negatives(pairs)["negatives"].to_list()
    [['g1', 'm1'], ['m3', 'm4']]
    """
    written = pl.concat_list(
        pl.col("llm_negative"), pl.col("negatives").list.head(pl.col("negatives").list.len() - 1)
    )
    return pairs.with_columns(
        pl.when(pl.col("llm_negative").is_not_null())
        .then(written)
        .otherwise(pl.col("negatives"))
        .alias("negatives")
    )
