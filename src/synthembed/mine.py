"""Hard negatives: mined from the corpus with the false-negative guards of the Qwen3-Embedding report
and sentence-transformers, other labels for classification pairs, and the generator's own for code
documents."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl

from synthembed.corpus import passages
from synthembed.filtering import normalized
from synthembed.models import anchor_prompt
from synthembed.search import top_k

logger = logging.getLogger(__name__)


def canonical_ids(texts: list[str]) -> np.ndarray:
    """Per text, the index of the first text with the same normalised form, so a reformatted copy of a
    positive is recognised as that positive.

    >>> canonical_ids(["Sort a dict.", "read a file", "sort a DICT"]).tolist()
    [0, 1, 0]
    """
    first: dict[str, int] = {}
    return np.array([first.setdefault(normalized(t), i) for i, t in enumerate(texts)], dtype=np.int64)


def repeated_in_row(ids: np.ndarray) -> np.ndarray:
    """Per entry of each row of ``ids``, whether the same id occurs earlier in that row.

    >>> repeated_in_row(np.array([[4, 2, 4, 2, 7], [1, 1, 1, 0, 0]])).tolist()
    [[False, False, True, True, False], [False, True, True, False, True]]
    """
    order = np.argsort(ids, axis=1, kind="stable")  # stable: the first occurrence sorts first
    ordered = np.take_along_axis(ids, order, axis=1)
    later = np.zeros(ids.shape, dtype=bool)
    later[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.empty_like(later)
    np.put_along_axis(repeated, order, later, axis=1)
    return repeated


def positive_table(anchors: list[str], positive_ids: np.ndarray) -> np.ndarray:
    """Per row, every corpus id that is a positive of the row's anchor, padded with -1.

    Rows with the same anchor text are one query with several positives (as sentence-transformers
    merges them): none of those positives may become a negative of any of them.

    >>> positive_table(["q", "r", "q"], np.array([4, 5, 6])).tolist()
    [[4, 6], [5, -1], [4, 6]]
    """
    by_anchor: dict[str, list[int]] = {}
    for anchor, pid in zip(anchors, positive_ids.tolist(), strict=True):
        ids = by_anchor.setdefault(anchor, [])
        if pid not in ids:
            ids.append(pid)
    width = max(len(ids) for ids in by_anchor.values())
    table = np.full((len(anchors), width), -1, dtype=np.int64)
    for row, anchor in enumerate(anchors):
        ids = by_anchor[anchor]
        table[row, : len(ids)] = ids
    return table


def passes_guards(scores: np.ndarray, positive_scores: np.ndarray, cfg: dict) -> np.ndarray:
    """Whether each score is at most ``max_score``, at most s(q, d+) - ``absolute_margin`` and at most
    (1 - ``relative_margin``) * s(q, d+) (each check only when its param is set): the false-negative
    guards of a candidate negative.

    >>> cfg = {"max_score": 0.9, "absolute_margin": None, "relative_margin": 0.1}
    >>> passes_guards(np.array([0.95, 0.8, 0.7]), np.array([1.0, 0.85, 0.85]), cfg).tolist()
    [False, False, True]
    """
    valid = np.ones(scores.shape, dtype=bool)
    if cfg["max_score"] is not None:
        valid &= scores <= cfg["max_score"]
    if cfg["absolute_margin"] is not None:
        valid &= scores <= positive_scores - cfg["absolute_margin"]
    if cfg["relative_margin"] is not None:
        valid &= scores <= positive_scores * (1 - cfg["relative_margin"])
    return valid


def choose_negatives(
    scores: np.ndarray,
    candidates: np.ndarray,
    positives: np.ndarray,
    positive_scores: np.ndarray,
    cfg: dict,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick ``cfg['num_negatives']`` negatives per row from its ranked candidates.

    ``scores``/``candidates`` (rows x k, best first) are the search results of each row's anchor,
    ``positives`` (rows x p, -1 padded) the ids that are never negatives, ``positive_scores`` s(q, d+).
    A candidate id seen earlier in its row (two corpus texts with one normalised form) is skipped like
    a positive: a pair never gets one negative twice, and the copy takes no rank in the window.
    A candidate qualifies when its rank among the distinct non-positive candidates lies in
    [range_min, range_max), its score is at most ``max_score``, at most s(q, d+) - ``absolute_margin``
    and at most (1 - ``relative_margin``) * s(q, d+) (each check only when its param is set).
    ``sampling_strategy`` top takes the best qualifying ones, random a seeded draw among them.

    Returns (negatives, their scores, enough): the chosen ids (rows x n, -1 where a row has too few),
    their scores (nan there) and whether each row got all n.

    >>> scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    >>> candidates = np.array([[3, 1, 2, 0]])
    >>> cfg = {"num_negatives": 2, "range_min": 0, "range_max": 10, "max_score": None,
    ...        "absolute_margin": None, "relative_margin": 0.1, "sampling_strategy": "top"}
    >>> ids, chosen_scores, enough = choose_negatives(
    ...     scores, candidates, np.array([[3]]), np.array([0.85]), cfg, np.random.default_rng(0))
    >>> ids.tolist(), chosen_scores.tolist(), enough.tolist()
    ([[2, 0]], [[0.7, 0.6]], [True])
    >>> twice = np.array([[3, 1, 2, 2]])  # 1 is too close to the positive; 2 comes back
    >>> choose_negatives(scores, twice, np.array([[3]]), np.array([0.85]), cfg, np.random.default_rng(0))[0]
    array([[ 2, -1]])
    """
    n = cfg["num_negatives"]
    is_positive = (
        (candidates[:, :, None] == positives[:, None, :]).any(axis=2)
        | (candidates < 0)
        | repeated_in_row(candidates)
    )
    rank = np.cumsum(~is_positive, axis=1) - 1
    valid = ~is_positive & (rank >= cfg["range_min"]) & (rank < cfg["range_max"])
    valid &= passes_guards(scores, positive_scores[:, None], cfg)
    if cfg["sampling_strategy"] == "random":
        order_key = np.where(valid, rng.random(valid.shape), np.inf)
    else:  # top: candidates are already best first
        order_key = np.where(valid, np.arange(valid.shape[1])[None, :], np.inf)
    order = np.argsort(order_key, axis=1, kind="stable")[:, :n]
    chosen_valid = np.take_along_axis(valid, order, axis=1)
    chosen = np.where(chosen_valid, np.take_along_axis(candidates, order, axis=1), -1)
    chosen_scores = np.where(chosen_valid, np.take_along_axis(scores, order, axis=1), np.nan)
    if chosen.shape[1] < n:  # fewer candidates than negatives asked for
        chosen = np.pad(chosen, ((0, 0), (0, n - chosen.shape[1])), constant_values=-1)
        chosen_scores = np.pad(
            chosen_scores, ((0, 0), (0, n - chosen_scores.shape[1])), constant_values=np.nan
        )
    return chosen, chosen_scores, (chosen >= 0).all(axis=1)


class DocumentMemo:
    """An embedder that encodes each document text once: the negatives stage searches the same corpus
    for every task type, and encoding it is most of the stage's time.

    Queries are passed through; the encoding options must not change between calls.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.vectors: dict[str, np.ndarray] = {}

    def encode_query(self, texts: list[str], **options) -> np.ndarray:
        return self.model.encode_query(texts, **options)

    def encode_document(self, texts: list[str], **options) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.model.encode_document(missing, **options), strict=True))
        return np.stack([self.vectors[t] for t in texts])


def mine_negatives(
    pairs: pl.DataFrame,
    corpus: list[str],
    model,
    cfg: dict[str, Any],
    query_prompt: str,
    batch_size: int,
    search: dict[str, Any],
    seed: int,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Add ``cfg['num_negatives']`` hard negatives from ``corpus`` to each (anchor, positive) pair.

    ``pairs`` has columns anchor and positive; its other columns are kept. The positives join the
    corpus, which is deduplicated by text; every anchor is encoded once (rows with the same anchor are
    one query with several positives, none of which becomes a negative of the others) and searched
    as the ``search`` params group says (exact in bounded-memory chunks, or a faiss inverted-file
    index). Candidates are chosen by ``choose_negatives``; a candidate whose normalised text equals a
    positive's is that positive. An optional ``source`` column holds the whole text a pair's positive
    was cut from (a structural pair's document, query removed): it is never that pair's negative.
    Adds ``negatives``, ``negative_scores``, ``positive_score`` and ``positive_rank``; pairs left
    with fewer than ``num_negatives`` qualifying negatives are dropped and counted in the returned
    statistics as ``no_valid_negative`` (the name is kept for the stats files; a dropped pair may have
    had some valid negatives).
    """
    n = cfg["num_negatives"]
    if pairs.is_empty():
        empty = pairs.with_columns(
            pl.lit(None, dtype=pl.List(pl.String)).alias("negatives"),
            pl.lit(None, dtype=pl.List(pl.Float64)).alias("negative_scores"),
            pl.lit(None, dtype=pl.Float64).alias("positive_score"),
            pl.lit(None, dtype=pl.Int64).alias("positive_rank"),
        )
        return empty, {"pairs": 0, "kept": 0, "no_valid_negative": 0, "merged_anchors": 0}
    anchors, positive_texts = pairs["anchor"].to_list(), pairs["positive"].to_list()
    source_texts = pairs["source"].fill_null(pairs["positive"]).to_list() if "source" in pairs.columns else []
    texts = list(dict.fromkeys(corpus + positive_texts + source_texts))
    text_id = {t: i for i, t in enumerate(texts)}
    canonical = canonical_ids(texts)
    unique_anchors = list(dict.fromkeys(anchors))
    anchor_row = {a: i for i, a in enumerate(unique_anchors)}
    encode = {"batch_size": batch_size, "normalize_embeddings": True, "show_progress_bar": True}
    corpus_vectors = model.encode_document(texts, **encode).astype(np.float32)
    anchor_vectors = model.encode_query([query_prompt + a for a in unique_anchors], **encode).astype(
        np.float32
    )
    positive_ids = canonical[[text_id[p] for p in positive_texts]]
    source_ids = canonical[[text_id[t] for t in source_texts]] if source_texts else positive_ids
    positives = positive_table(anchors * 2, np.concatenate([positive_ids, source_ids]))[: len(anchors)]
    # Room for the window, the anchor's positives and (a few) normalised copies, which take no rank.
    k = cfg["range_max"] + positives.shape[1] + min(32, len(texts) - len(set(canonical.tolist())))
    scores, candidates = top_k(anchor_vectors, corpus_vectors, k, search)
    rows = np.array([anchor_row[a] for a in anchors])
    positive_scores = np.einsum("ij,ij->i", anchor_vectors[rows], corpus_vectors[positive_ids])
    row_candidates = np.where(candidates[rows] >= 0, canonical[candidates[rows]], -1)
    chosen, negative_scores, enough = choose_negatives(
        scores[rows], row_candidates, positives, positive_scores, cfg, np.random.default_rng(seed)
    )
    found = row_candidates == positive_ids[:, None]
    positive_rank = np.where(found.any(axis=1), found.argmax(axis=1), -1)
    result = pairs.with_columns(
        pl.Series("negatives", [[texts[j] for j in row] for row in chosen], dtype=pl.List(pl.String)),
        pl.Series("negative_scores", negative_scores.tolist(), dtype=pl.List(pl.Float64)),
        pl.Series("positive_score", positive_scores.astype(np.float64), dtype=pl.Float64),
        # Rank of the row's own positive among its anchor's candidates; null when below them all.
        pl.Series("positive_rank", positive_rank, dtype=pl.Int64).replace(-1, None),
    ).filter(pl.Series(enough))
    stats = {
        "pairs": pairs.height,
        "kept": result.height,
        "no_valid_negative": int((~enough).sum()),
        "merged_anchors": len(anchors) - len(unique_anchors),
    }
    logger.info("mined %d negatives for %d of %d pairs", n, result.height, pairs.height)
    return result, stats


def one_text_per_label(pairs: pl.DataFrame) -> pl.DataFrame:
    """Classification pairs with every label's positive set to the first text written for it, so two
    descriptions of one label are one positive and never each other's negative.

    >>> pairs = pl.DataFrame({"label": ["json", "csv", "json"], "positive": ["json: a", "csv: b", "json: c"]})
    >>> one_text_per_label(pairs)["positive"].to_list()
    ['json: a', 'csv: b', 'json: a']
    """
    return pairs.with_columns(pl.col("positive").first().over("label", order_by=pl.int_range(pl.len())))


def checked_llm_negatives(
    pairs: pl.DataFrame, model, cfg: dict[str, Any], query_prompt: str, batch_size: int
) -> tuple[pl.DataFrame, int]:
    """Score each mined pair's generator-written negative (code documents) as its mined negatives were
    scored, and keep it only where it passes the same guards and is not its positive up to case and
    punctuation: a small generator may write the function again. Adds ``llm_negative_score``; a
    negative set aside becomes null. Returns the pairs and how many were set aside.
    """
    written = pairs["llm_negative"].is_not_null().to_numpy()
    scores = np.full(pairs.height, np.nan)
    if written.any():
        part = pairs.filter(pl.Series(written))
        encode = {"batch_size": batch_size, "normalize_embeddings": True}
        anchors = model.encode_query([query_prompt + a for a in part["anchor"]], **encode)
        negatives = model.encode_document(part["llm_negative"].to_list(), **encode)
        scores[written] = np.einsum("ij,ij->i", anchors, negatives)
    copies = np.array(
        [
            n is not None and normalized(n) == normalized(p)
            for n, p in zip(pairs["llm_negative"], pairs["positive"], strict=True)
        ],
        dtype=bool,
    )
    kept = written & ~copies & passes_guards(scores, pairs["positive_score"].to_numpy(), cfg)
    checked = pairs.with_columns(
        pl.when(pl.Series(kept)).then(pl.col("llm_negative")).alias("llm_negative"),
        pl.Series("llm_negative_score", np.where(kept, scores, np.nan)).fill_nan(None),
    )
    return checked, int((written & ~kept).sum())


def with_llm_negatives(pairs: pl.DataFrame) -> pl.DataFrame:
    """Put a pair's generator-written negative (code documents) first among its negatives, with its
    score, in place of the last mined one, so every pair keeps the same count.

    >>> pairs = pl.DataFrame({"negatives": [["m1", "m2"], ["m3", "m4"]], "negative_scores": [[0.5, 0.4]] * 2,
    ...                       "llm_negative": ["g1", None], "llm_negative_score": [0.3, None]})
    >>> with_llm_negatives(pairs).select("negatives", "negative_scores").rows()
    [(['g1', 'm1'], [0.3, 0.5]), (['m3', 'm4'], [0.5, 0.4])]
    """
    written = pl.col("llm_negative").is_not_null()

    def shifted(column: str, first: pl.Expr) -> pl.Expr:
        head = pl.col(column).list.head(pl.col(column).list.len() - 1)
        return pl.when(written).then(pl.concat_list(first, head)).otherwise(pl.col(column)).alias(column)

    return pairs.with_columns(
        shifted("negatives", pl.col("llm_negative")), shifted("negative_scores", pl.col("llm_negative_score"))
    ).drop("llm_negative_score")


def mine_training_pairs(
    train: pl.DataFrame,
    docs: pl.DataFrame,
    model,
    embedder_cfg: dict[str, Any],
    cfg: dict[str, Any],
    search: dict[str, Any],
    seed: int,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Hard negatives for the training pairs of every task type: documents of ``docs`` (doc_id, title,
    text) for retrieval, sts and bitext anchors (only retrieval anchors get the query instruction;
    a pair's own document is never its negative, also where its positive is a part of it), other
    labels for classification; the generator's own negative first for code, where it passes the
    guards (``checked_llm_negatives``; those set aside are counted as ``llm_negative_rejected``).
    Returns the pairs and stats per task type."""
    mine = {"batch_size": embedder_cfg["batch_size"], "search": search, "seed": seed}
    corpus = passages(docs)
    source = pl.DataFrame({"doc_id": docs["doc_id"], "source": corpus})
    parts, stats = [], {}
    for (task_type,), group in train.group_by("task_type", maintain_order=True):
        prompt = anchor_prompt(task_type, embedder_cfg["query_prompt"])
        if task_type == "classification":
            # A document's negatives are the other labels: the labels are the whole corpus here.
            mined, stats[task_type] = mine_negatives(
                one_text_per_label(group), [], model, cfg, prompt, **mine
            )
        else:
            with_source = group.join(source, on="doc_id", how="left", maintain_order="left")
            mined, stats[task_type] = mine_negatives(with_source, corpus, model, cfg, prompt, **mine)
            mined = mined.drop("source")
        mined, stats[task_type]["llm_negative_rejected"] = checked_llm_negatives(
            mined, model, cfg, prompt, embedder_cfg["batch_size"]
        )
        parts.append(with_llm_negatives(mined))
    if not parts:
        return mine_negatives(train, [], model, cfg, "", **mine)[0], stats
    return pl.concat(parts).sort("task_type", "doc_id", "anchor"), stats
