"""How many mined hard negatives are in fact relevant (false negatives), with and without the guard.

    python benchmarks/false_negatives.py --beir data/scifact-dev --split dev

Each query of the split is paired with its first judged-relevant document only, as a generated query
is paired with its source document; the query's other relevant documents are what a miner must not
return as negatives. Negatives are mined over the whole corpus with the embedded MiniLM (3 per
query, ranks 0-50) under each guard, and checked against the qrels.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from synthembed.mine import mine_negatives
from synthembed.models import load_embedder

GUARDS = {
    "none": {"relative_margin": None, "absolute_margin": None},
    "report (drop above s(q,d+) + 0.1)": {"relative_margin": None, "absolute_margin": -0.1},
    "absolute 0.05 (drop above s(q,d+) - 0.05)": {"relative_margin": None, "absolute_margin": 0.05},
    "relative 0.05 (default)": {"relative_margin": 0.05, "absolute_margin": None},
}


class Memo:
    """Encodes every text once across the runs; the same interface as the model."""

    def __init__(self, model):
        self.model, self.vectors = model, {}

    def encode(self, method: str, texts: list[str], **options) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if (method, t) not in self.vectors]
        if new:
            for text, vector in zip(new, getattr(self.model, method)(new, **options), strict=True):
                self.vectors[method, text] = vector
        return np.stack([self.vectors[method, t] for t in texts])

    def encode_document(self, texts, **options):
        return self.encode("encode_document", texts, **options)

    def encode_query(self, texts, **options):
        return self.encode("encode_query", texts, **options)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--beir", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    args = parser.parse_args()
    folder = Path(args.beir)
    corpus = pl.read_ndjson(folder / "corpus.jsonl", schema_overrides={"_id": pl.String})
    queries = pl.read_ndjson(folder / "queries.jsonl", schema_overrides={"_id": pl.String})
    qrels = pl.read_csv(
        folder / "qrels" / f"{args.split}.tsv",
        separator="\t",
        schema_overrides={"query-id": pl.String, "corpus-id": pl.String},
    )
    qrels = qrels.filter(pl.col("score") > 0)
    texts = {d: f"{t}\n{x}" if t else x for d, t, x in corpus.select("_id", "title", "text").iter_rows()}
    query_text = dict(queries.select("_id", "text").iter_rows())
    relevant = {q: set(g["corpus-id"]) for (q,), g in qrels.group_by("query-id")}
    first = qrels.group_by("query-id", maintain_order=True).first()
    pairs = pl.DataFrame(
        {
            "query_id": first["query-id"],
            "anchor": [query_text[q] for q in first["query-id"]],
            "positive": [texts[d] for d in first["corpus-id"]],
        }
    )
    doc_of_text = {t: d for d, t in texts.items()}
    model = Memo(
        load_embedder(
            {
                "model": "embedded:all-minilm-l6-v2",
                "pooling": "auto",
                "padding_side": "auto",
                "max_seq_length": 256,
                "encode_dtype": "auto",
            }
        )
    )
    base = {
        "num_negatives": 3,
        "range_min": 0,
        "range_max": 50,
        "max_score": None,
        "sampling_strategy": "top",
    }
    report = {
        "queries": pairs.height,
        "queries_with_other_relevant_docs": sum(len(relevant[q]) > 1 for q in pairs["query_id"]),
    }
    for name, guard in GUARDS.items():
        mined, _ = mine_negatives(
            pairs, list(texts.values()), model, base | guard, "", 64, {"method": "exact"}, 0
        )
        false = sum(
            doc_of_text[n] in relevant[q]
            for q, negatives in zip(mined["query_id"], mined["negatives"], strict=True)
            for n in negatives
        )
        report[name] = {"pairs_kept": mined.height, "negatives": 3 * mined.height, "judged_relevant": false}
        print(name, report[name], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
