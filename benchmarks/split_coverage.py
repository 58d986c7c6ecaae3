"""How much of a corpus the embedder reads, with its documents whole and split into parts of at most N
words (`docs.split_words`): the share of the corpus's tokens that fall within the first
`embedder.max_seq_length` tokens of their document or part, and how many parts are still longer.

Reads the corpus the way the docs stage does (params' docs group, every document) and counts tokens with
the embedder's tokenizer, title included, as it is encoded. Use it to choose `docs.split_words` for a corpus.

    python benchmarks/split_coverage.py --params params.yaml --limits 180 120 90 60 --out coverage.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics

import polars as pl

from synthembed.corpus import corpus_from_params, passages
from synthembed.models import load_embedder
from synthembed.params import load_params

logger = logging.getLogger(__name__)


def window_coverage(token_counts: list[int], window: int) -> dict[str, float | int]:
    """The share of all tokens within the first ``window`` tokens of their text, and the texts longer.

    >>> window_coverage([100, 300, 600], 256)
    {'texts': 3, 'tokens': 1000, 'median_tokens': 300, 'tokens_within_window': 0.612, 'texts_over_window': 2}
    """
    total = sum(token_counts)
    within = sum(min(count, window) for count in token_counts)
    return {
        "texts": len(token_counts),
        "tokens": total,
        "median_tokens": statistics.median(token_counts) if token_counts else 0,
        "tokens_within_window": round(within / total, 4) if total else 1.0,
        "texts_over_window": sum(count > window for count in token_counts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--limits", type=int, nargs="+", required=True, help="docs.split_words values")
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = load_params(args.params)
    cfg = params["docs"]
    model = load_embedder(params["embedder"], "cpu")
    window = model.max_seq_length
    rows = []
    for limit in [None, *args.limits]:
        corpus = corpus_from_params(cfg | {"split_words": limit})
        texts = passages(pl.DataFrame(list(corpus.docs)))
        counts = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        row = {"split_words": limit, "rejected": len(corpus.rejected)} | window_coverage(counts, window)
        logger.info(
            "split_words %s: %d texts, %.1f %% of %d tokens within the %d-token window, %d texts longer",
            limit,
            row["texts"],
            100 * row["tokens_within_window"],
            row["tokens"],
            window,
            row["texts_over_window"],
        )
        rows.append(row)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"window": window, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
