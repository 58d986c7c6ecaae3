"""Top-k search by inner product over normalised embeddings: exact in chunks with bounded memory, or
approximate through a faiss inverted-file index for large corpora (exact search of n queries over n
documents costs n^2; the index grows about linearly)."""

from __future__ import annotations

import numpy as np
import torch


def exact_top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    query_chunk: int = 1024,
    corpus_chunk: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest inner products of every query over the corpus: (scores, indices), best first.

    Scores are computed one (query chunk x corpus chunk) block at a time and merged into a running
    top-k, so memory stays at one block (``query_chunk * corpus_chunk`` floats) whatever the corpus
    size. The order of tied scores is unspecified (``torch.topk`` does not keep index order).

    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    >>> scores, indices = exact_top_k(np.array([[0.0, 1.0]], dtype=np.float32), corpus, 2, corpus_chunk=2)
    >>> indices.tolist(), [round(float(s), 2) for s in scores[0]]
    ([[1, 2]], [1.0, 0.8])
    """
    k = min(k, len(corpus))
    corpus_t = torch.from_numpy(np.ascontiguousarray(corpus, dtype=np.float32))
    all_scores = np.empty((len(queries), k), dtype=np.float32)
    all_indices = np.empty((len(queries), k), dtype=np.int64)
    for q_start in range(0, len(queries), query_chunk):
        block = torch.from_numpy(
            np.ascontiguousarray(queries[q_start : q_start + query_chunk], dtype=np.float32)
        )
        best_scores = torch.full((len(block), 0), float("-inf"))
        best_indices = torch.zeros((len(block), 0), dtype=torch.int64)
        for c_start in range(0, len(corpus_t), corpus_chunk):
            scores = block @ corpus_t[c_start : c_start + corpus_chunk].T
            top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            merged_scores = torch.cat([best_scores, top.values], dim=1)
            merged_indices = torch.cat([best_indices, top.indices + c_start], dim=1)
            # A stable sort on the merged candidates keeps earlier (lower-index) chunks first on ties.
            order = torch.sort(merged_scores, dim=1, descending=True, stable=True).indices[:, :k]
            best_scores = torch.gather(merged_scores, 1, order)
            best_indices = torch.gather(merged_indices, 1, order)
        all_scores[q_start : q_start + len(block)] = best_scores.numpy()
        all_indices[q_start : q_start + len(block)] = best_indices.numpy()
    return all_scores, all_indices


def faiss_top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, list_size: int = 1000, probe: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k through a faiss inverted-file index (IVF, inner product); -1 marks a
    missing neighbour.

    The corpus is clustered into ``len(corpus) // list_size`` lists and each query scans the
    ``probe`` closest lists, so a query costs about ``probe * list_size`` comparisons whatever the
    corpus size: n queries over n documents grow linearly, not as n^2.
    """
    import faiss

    lists = max(1, len(corpus) // list_size)
    corpus = np.ascontiguousarray(corpus, dtype=np.float32)
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(corpus.shape[1]), corpus.shape[1], lists, faiss.METRIC_INNER_PRODUCT
    )
    index.train(corpus)
    index.add(corpus)
    index.nprobe = min(probe, lists)
    scores, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(corpus)))
    return scores, indices.astype(np.int64)


EXACT = {"method": "exact"}


def top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, cfg: dict = EXACT
) -> tuple[np.ndarray, np.ndarray]:
    """Search as the ``search`` params group says: ``exact`` (chunked torch) or ``faiss`` (IVF)."""
    if cfg["method"] == "exact":
        return exact_top_k(queries, corpus, k)
    if cfg["method"] == "faiss":
        return faiss_top_k(queries, corpus, k, cfg["ivf_list_size"], cfg["ivf_probe"])
    raise ValueError(f"unknown search method {cfg['method']!r}")


def rank_of(
    queries: np.ndarray, corpus: np.ndarray, targets: np.ndarray, k: int, cfg: dict = EXACT
) -> list[int | None]:
    """Per query, the 0-based rank of its target corpus row among the ``k`` best, or None when it is
    not among them.

    >>> corpus = np.eye(3, dtype=np.float32)
    >>> rank_of(np.array([[0.1, 0.9, 0.3], [0.1, 0.9, 0.3]], dtype=np.float32), corpus, np.array([2, 0]), 2)
    [1, None]
    """
    _, indices = top_k(queries, corpus, k, cfg)
    hits = indices == targets[:, None]
    return [int(row.argmax()) if row.any() else None for row in hits]
