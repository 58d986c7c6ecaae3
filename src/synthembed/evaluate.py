"""Retrieval metrics with sentence-transformers' InformationRetrievalEvaluator."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from synthembed.mine import DocumentMemo

logger = logging.getLogger(__name__)

METRICS = {  # our name -> (evaluator key, k)
    "ndcg@10": ("ndcg@k", 10),
    "mrr@10": ("mrr@k", 10),
    "recall@10": ("recall@k", 10),
    "recall@100": ("recall@k", 100),
    "map@100": ("map@k", 100),
}


def eval_sets(judgments: pl.DataFrame) -> dict[str, tuple[dict[str, str], dict[str, set[str]]]]:
    """Per eval set: queries {query_id: text} and relevant docs {query_id: {doc_id}}; a judgment with
    a score of 0 or less is not relevant, and a query without a relevant document is left out (as
    ``read_beir_set`` does).

    >>> j = pl.DataFrame({"eval_set": ["s"] * 4, "query_id": ["q", "q", "q", "r"],
    ...                   "query": ["x", "x", "x", "y"], "doc_id": ["a", "b", "c", "a"],
    ...                   "score": [1, 2, 0, 0]})
    >>> queries, relevant = eval_sets(j)["s"]
    >>> queries, sorted(relevant["q"])
    ({'q': 'x'}, ['a', 'b'])
    """
    sets = {}
    relevant_judgments = judgments.filter(pl.col("score") > 0).sort("eval_set")
    for (name,), group in relevant_judgments.group_by("eval_set", maintain_order=True):
        queries = dict(zip(group["query_id"], group["query"], strict=True))
        relevant: dict[str, set[str]] = {}
        for qid, did in zip(group["query_id"], group["doc_id"], strict=True):
            relevant.setdefault(qid, set()).add(did)
        sets[name] = (queries, relevant)
    return sets


def metric_delta(base: dict[str, float], tuned: dict[str, float]) -> dict[str, float]:
    """tuned - base per metric.

    >>> metric_delta({"ndcg@10": 0.5}, {"ndcg@10": 0.625})
    {'ndcg@10': 0.125}
    """
    return {k: tuned[k] - base[k] for k in base}


def evaluate_model(
    model,
    corpus: dict[str, str],
    sets: dict[str, tuple[dict[str, str], dict[str, set[str]]]],
    query_prompts: dict[str, str],
    batch_size: int,
    documents: DocumentMemo | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of one model on every eval set; the corpus is encoded once and shared by all sets.

    ``query_prompts`` gives the instruction of a set's queries; sets not named get none. ``documents``
    (a DocumentMemo of the same model) keeps document vectors across calls, so a text found in two
    corpora (the documents and a BEIR set built from them) is encoded once.
    """
    import torch
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    documents = documents or DocumentMemo(model)
    corpus_ids = list(corpus)
    corpus_embeddings = torch.from_numpy(
        documents.encode_document(
            [corpus[c] for c in corpus_ids],
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=True,
        ).astype("float32")
    ).to(model.device)
    results: dict[str, dict[str, float]] = {}
    for name, (queries, relevant) in sets.items():
        evaluator = InformationRetrievalEvaluator(
            queries,
            dict(zip(corpus_ids, (corpus[c] for c in corpus_ids), strict=True)),
            relevant,
            mrr_at_k=[10],
            ndcg_at_k=[10],
            accuracy_at_k=[1],
            precision_recall_at_k=[10, 100],
            map_at_k=[100],
            batch_size=batch_size,
            name=name,
            write_csv=False,
            query_prompt=query_prompts.get(name) or None,
            score_functions={"cosine": _cos_sim()},
        )
        scores = evaluator.compute_all_metrics(model, corpus_embeddings=corpus_embeddings)["cosine"]
        results[name] = {ours: float(scores[key][k]) for ours, (key, k) in METRICS.items()}
        logger.info("%s: %s", name, results[name])
    return results


def _cos_sim():
    from sentence_transformers.util import cos_sim

    def score(a, b):
        return cos_sim(a.float(), b.float())

    return score


def synthetic_dev_sets(
    dev: pl.DataFrame,
) -> tuple[
    dict[str, tuple[dict[str, str], dict[str, set[str]]]],
    dict[str, tuple[dict[str, str], dict[str, set[str]]]],
]:
    """The generated rows of the dev split as eval sets, one per task type, named
    ``synthetic_dev_<task type>``. Structural pairs are left out: their query (a title, a first
    sentence, a finding) is a part of the document it would be searched in.

    Returns the sets searched over the documents (retrieval, sts, bitext: the generated text must
    find its document) and those searched over the label texts (classification: a document must
    find its label). Query ids are row numbers.

    >>> dev = pl.DataFrame({"task_type": ["sts", "classification", "retrieval"],
    ...                     "anchor": ["p", "doc b", "T"], "positive": ["doc a", "l: d", "body"],
    ...                     "doc_id": ["a", "b", "c"],
    ...                     "label": [None, "l", None], "generator": ["llm", "llm", "structural:title"]})
    >>> over_docs, over_labels = synthetic_dev_sets(dev)
    >>> over_docs, over_labels["synthetic_dev_classification"]
    ({'synthetic_dev_sts': ({'0': 'p'}, {'0': {'a'}})}, ({'1': 'doc b'}, {'1': {'l'}}))
    """
    over_docs, over_labels = {}, {}
    for i, row in enumerate(dev.iter_rows(named=True)):
        if row["generator"].startswith("structural:"):
            continue
        name = f"synthetic_dev_{row['task_type']}"
        target = over_labels if row["task_type"] == "classification" else over_docs
        queries, relevant = target.setdefault(name, ({}, {}))
        queries[str(i)] = row["anchor"]
        relevant[str(i)] = {row["label"] if row["task_type"] == "classification" else row["doc_id"]}
    return over_docs, over_labels


def compare(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per eval set: each model's metrics, and each tuned model's gain over ``base`` as ``delta_<model>``.

    ``results`` maps model name (``base`` first, then e.g. ``tuned``, ``merged``) to {set: metrics}.

    >>> compare({"base": {"s": {"ndcg@10": 0.5}}, "tuned": {"s": {"ndcg@10": 0.625}}})
    {'s': {'base': {'ndcg@10': 0.5}, 'tuned': {'ndcg@10': 0.625}, 'delta_tuned': {'ndcg@10': 0.125}}}
    """
    base = results["base"]
    return {
        name: {model: by_set[name] for model, by_set in results.items()}
        | {
            f"delta_{model}": metric_delta(base[name], by_set[name])
            for model, by_set in results.items()
            if model != "base"
        }
        for name in base
    }
