"""Real labelled pairs as training data: the reference synthetic pairs are measured against.

A BEIR split's judged queries are shuffled (seeded) and cut in two halves. The first half's (query,
relevant document) pairs are written in the balanced stage's layout (a tenth of its queries as the
dev split the trainer's eval loss reads), the second half's judgments as a new qrels split of the same
folder layout, less any query whose text a first-half query repeats word for word, so
`benchmarks/train_ablation.py` trains on real pairs and scores on queries it has not seen, exactly as
it does for generated pairs (in a project whose docs stage read the same corpus, `docs.source: beir`):

    python benchmarks/real_pairs.py --eval-set data/scifact-dev --out runs/scifact-real
    python benchmarks/train_ablation.py --params params.yaml --docs results/docs.parquet \\
        --balanced runs/scifact-real/pairs.parquet --structural results/structural.parquet \\
        --eval-set runs/scifact-real --split heldout --variants real.json

with real.json holding `[{"name": "real pairs"}, {"name": "real pairs, full", "train": {"method": "full",
"learning_rate": 2e-5}}]`. Scoring the generated pairs on the same half is the same command with
`--balanced results/balanced.parquet`.

The folder gets corpus.jsonl and queries.jsonl as links to the originals and qrels/heldout.tsv.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import polars as pl

from synthembed.corpus import read_beir_set


def halves(query_ids: list[str], seed: int) -> tuple[list[str], list[str]]:
    """The sorted ids shuffled with ``seed`` and cut in two (the first half the smaller when odd).

    >>> halves(["a", "b", "c", "d", "e"], seed=1)
    (['c', 'd'], ['e', 'a', 'b'])
    """
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    return shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]


def normalised(text: str) -> str:
    """A query's words, lower-cased, without punctuation: what makes two queries the same question.

    >>> normalised("Adult tissue-resident macrophages are seeded before birth.")
    'adult tissue resident macrophages are seeded before birth'
    """
    return " ".join(re.findall(r"\w+", text.lower()))


def without_training_repeats(
    heldout_ids: list[str], train_ids: list[str], queries: dict[str, str]
) -> list[str]:
    """The held-out ids whose query is not, word for word, a training query (SciFact repeats a few claims
    under other ids): a held-out query the model was trained on would score its memory.

    >>> without_training_repeats(["q2", "q3"], ["q1"], {"q1": "A claim.", "q2": "a CLAIM", "q3": "another"})
    ['q3']
    """
    trained = {normalised(queries[q]) for q in train_ids}
    return [q for q in heldout_ids if normalised(queries[q]) not in trained]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-set", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", required=True, help="folder for pairs.parquet and the held-out split")
    args = parser.parse_args()

    beir = read_beir_set(args.eval_set, args.split)
    train_ids, halved_ids = halves(list(beir.queries), args.seed)
    heldout_ids = without_training_repeats(halved_ids, train_ids, beir.queries)
    dev_ids = set(train_ids[: len(train_ids) // 10])
    pairs = pl.DataFrame(
        [
            {
                "doc_id": doc_id,
                "task_type": "retrieval",
                "anchor": beir.queries[query_id],
                "positive": beir.corpus[doc_id],
                "label": None,
                "llm_negative": None,
                "split": "dev" if query_id in dev_ids else "train",
            }
            for query_id in train_ids
            for doc_id in sorted(beir.relevant[query_id])
        ],
        schema_overrides={"label": pl.String, "llm_negative": pl.String},
    )
    out = Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to((Path(args.eval_set) / name).resolve())
    judgments = [f"{q}\t{d}\t1\n" for q in heldout_ids for d in sorted(beir.relevant[q])]
    (out / "qrels" / "heldout.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(judgments))
    pairs.write_parquet(out / "pairs.parquet")
    counts = pairs["split"].value_counts().sort("split").rows()
    sizes = {"train_queries": len(train_ids), "heldout_queries": len(heldout_ids)}
    sizes["heldout_dropped_as_training_queries"] = len(halved_ids) - len(heldout_ids)
    print(json.dumps(sizes | dict(counts)))


if __name__ == "__main__":
    main()
