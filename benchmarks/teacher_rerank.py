"""Does a teacher know what the embedder does not? Rerank the embedder's top k for a BEIR set's judged
queries by the teacher's log p(query | document) (``negatives.teacher``, UPR) and compare nDCG@10 with
the embedder's own order, and with the two z-scored and added.

    python benchmarks/teacher_rerank.py --params params.yaml --eval-set data/scifact-dev \\
        --queries 100 --top-k 20 --model embedded:smollm2-135m-instruct --out rerank.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from synthembed.corpus import read_beir_set
from synthembed.models import load_embedder
from synthembed.params import load_params
from synthembed.search import top_k
from synthembed.teacher import load_teacher


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    """Binary-relevance nDCG@10 of a ranked list of ids.

    >>> round(ndcg_at_10(["b", "a"], {"a"}), 4)
    0.6309
    """
    dcg = sum(1 / np.log2(i + 2) for i, doc in enumerate(ranked[:10]) if doc in relevant)
    ideal = sum(1 / np.log2(i + 2) for i in range(min(len(relevant), 10)))
    return float(dcg / ideal)


def zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--eval-set", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--queries", type=int, default=100, help="the first n judged queries by id")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--model", help="overrides negatives.teacher.model")
    parser.add_argument("--instruction", help="overrides negatives.teacher.instruction")
    parser.add_argument("--out", help="JSON file for the result")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    params = load_params(args.params)
    teacher = params["negatives"]["teacher"]
    teacher |= {k: v for k, v in {"model": args.model, "instruction": args.instruction}.items() if v}
    if teacher["model"] is None:
        parser.error("no teacher: set negatives.teacher.model or --model")
    beir = read_beir_set(args.eval_set, args.split)
    query_ids = sorted(beir.relevant)[: args.queries]
    doc_ids = list(beir.corpus)
    emb = params["embedder"]
    embedder = load_embedder(emb, params["runtime"]["device"])
    encode = {"batch_size": emb["batch_size"], "normalize_embeddings": True, "show_progress_bar": True}
    documents = embedder.encode_document([beir.corpus[d] for d in doc_ids], **encode).astype(np.float32)
    queries = embedder.encode_query([emb["query_prompt"] + beir.queries[q] for q in query_ids], **encode)
    cosines, top = top_k(queries.astype(np.float32), documents, args.top_k, params["search"])

    score = load_teacher(teacher, params["runtime"])
    started = time.monotonic()
    likelihoods = score(
        [beir.queries[q] for q in query_ids for _ in range(args.top_k)],
        [beir.corpus[doc_ids[j]] for row in top for j in row],
    ).reshape(len(query_ids), args.top_k)
    seconds = time.monotonic() - started
    orders = {"embedder": lambda i: cosines[i], "teacher": lambda i: likelihoods[i]}
    orders["sum of z-scores"] = lambda i: zscore(cosines[i]) + zscore(likelihoods[i])
    result = {"eval_set": beir.name, "queries": len(query_ids), "top_k": args.top_k} | {
        "teacher": teacher["model"],
        "instruction": teacher["instruction"],
        "teacher_s": round(seconds, 1),
    }
    for name, order in orders.items():
        ranked = [
            [doc_ids[top[i][j]] for j in np.argsort(-order(i), kind="stable")] for i in range(len(query_ids))
        ]
        scores = [ndcg_at_10(r, beir.relevant[q]) for r, q in zip(ranked, query_ids, strict=True)]
        result[f"ndcg@10 {name}"] = round(float(np.mean(scores)), 4)
    print(json.dumps(result), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
