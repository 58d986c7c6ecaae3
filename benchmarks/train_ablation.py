"""Ablation of the model stage on a real eval set: train variants on the negatives stage's output and
report each one's nDCG@10 on a BEIR folder (its own corpus, its judged queries only).

A variant is a name, `train` params overrides (deep-merged) and row selections:

    {"name": "full", "train": {"method": "full", "learning_rate": 2e-5}}
    {"name": "retrieval only", "task_types": ["retrieval"]}
    {"name": "cosine >= 0.5", "min_positive_score": 0.5}
    {"name": "round trip top-3", "max_positive_rank": 3}
    {"name": "in-batch only", "hard_negatives": false}

    python benchmarks/train_ablation.py --params params.yaml --negatives results/negatives.parquet \\
        --balanced results/balanced.parquet --eval-set ../shared/data/scifact-dev --variants variants.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from synthembed.corpus import read_beir_set
from synthembed.evaluate import evaluate_model
from synthembed.models import load_embedder
from synthembed.params import load_params
from synthembed.train import train_embedder


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) else value
    return merged


def selected_pairs(pairs: pl.DataFrame, variant: dict[str, Any]) -> pl.DataFrame:
    """The training rows a variant keeps."""
    if "task_types" in variant:
        pairs = pairs.filter(pl.col("task_type").is_in(variant["task_types"]))
    if "min_positive_score" in variant:
        pairs = pairs.filter(pl.col("positive_score") >= variant["min_positive_score"])
    if "max_positive_rank" in variant:
        pairs = pairs.filter(pl.col("positive_rank") <= variant["max_positive_rank"])
    if not variant.get("hard_negatives", True):
        pairs = pairs.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("negatives"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--negatives", required=True)
    parser.add_argument("--balanced", required=True)
    parser.add_argument("--eval-set", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--query-prompt", default=None, help="default: embedder.query_prompt")
    parser.add_argument("--variants", required=True, help="JSON list of variants")
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    params = load_params(args.params)
    emb, device = params["embedder"], params["runtime"]["device"]
    pairs = pl.read_parquet(args.negatives)
    dev = (
        pl.read_parquet(args.balanced)
        .filter(pl.col("split") == "dev")
        .select("task_type", "anchor", "positive")
    )
    beir = read_beir_set(args.eval_set, args.split)
    prompt = emb["query_prompt"] if args.query_prompt is None else args.query_prompt
    sets = {beir.name: (beir.queries, beir.relevant)}

    def ndcg(path: str | None) -> float:
        model = load_embedder(emb, device, path=path)
        return evaluate_model(model, beir.corpus, sets, {beir.name: prompt}, emb["batch_size"])[beir.name][
            "ndcg@10"
        ]

    base = ndcg(None)
    rows = [{"variant": "base", "pairs": 0, "ndcg@10": round(base, 4), "delta": 0.0}]
    print(json.dumps(rows[0]), flush=True)
    for variant in json.loads(Path(args.variants).read_text()):
        cfg = deep_merge(params["train"], variant.get("train", {}))
        chosen = selected_pairs(pairs, variant)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            train_embedder(chosen, dev, emb, cfg, params["seed"], device, Path(tmp) / "model", Path(tmp))
            seconds = time.monotonic() - started
            models = {variant["name"]: Path(tmp) / "model"}
            if (Path(tmp) / "model" / "merged").is_dir():
                models[variant["name"] + " (merged)"] = Path(tmp) / "model" / "merged"
            for name, path in models.items():
                score = ndcg(str(path))
                row = {"variant": name, "pairs": chosen.height, "ndcg@10": round(score, 4)}
                row |= {"delta": round(100 * (score - base), 2), "train_s": round(seconds, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
