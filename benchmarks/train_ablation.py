"""Ablation of what the model is trained on and how, measured on a real eval set: each variant builds its
training pairs from a run's balanced (and structural) pairs, mines their hard negatives, trains, and is
scored by nDCG@10 on a BEIR folder (its own corpus, its judged queries only).

A variant is a name, data choices (`balanced` names another run's balanced pairs, e.g. one generated
with other queries params; `structural` another run's structural pairs) and `train` params overrides
(deep-merged):

    {"name": "defaults"}
    {"name": "full fine-tune", "train": {"method": "full", "learning_rate": 2e-5}}
    {"name": "structural 80%", "structural_share": 0.8}
    {"name": "structural only", "structural_share": 1.0, "generated": false}
    {"name": "retrieval only", "task_types": ["retrieval"]}
    {"name": "in-batch negatives only", "hard_negatives": false}
    {"name": "distilled", "train": {"loss": "mnrl", "distillation": 1.0}}
    {"name": "softer teacher", "train": {"loss": "mnrl", "distillation": 1.0, "teacher_temperature": 10}}
    {"name": "corpus examples", "balanced": "runs/corpus-examples/balanced.parquet"}
    {"name": "other pseudo-queries", "structural": "runs/other/structural.parquet", "structural_share": 1.0}

    python benchmarks/train_ablation.py --params params.yaml --docs results/docs.parquet \\
        --balanced results/balanced.parquet --structural results/structural.parquet \\
        --eval-set data/scifact-dev --variants variants.json --out ablation.json

Each row also gives the delta on the eval queries with a relevant document among the variant's training
positives (``seen``) and on the others (``unseen``).

With ``--seeds 13 14 15`` every variant runs once per seed and the table ends with its mean: one run's
delta moves by up to a point between seeds on a few hundred pairs.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from synthembed.balance import with_structural
from synthembed.corpus import read_beir_set
from synthembed.evaluate import evaluate_model
from synthembed.mine import DocumentMemo, mine_training_pairs
from synthembed.models import load_embedder
from synthembed.params import load_params, validate_params
from synthembed.teacher import score_with_teacher, teacher_agreement
from synthembed.train import train_embedder

COLUMNS = ["doc_id", "task_type", "generator", "anchor", "positive", "label", "llm_negative"]


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) else value
    return merged


def training_rows(
    balanced: pl.DataFrame, structural: pl.DataFrame, variant: dict[str, Any], seed: int
) -> pl.DataFrame:
    """The train-split rows a variant learns from: the generated pairs (unless ``generated`` is false)
    plus structural pairs at ``structural_share``; no document of the dev split."""
    generated = balanced.filter(pl.col("split") == "train")
    dev_docs = set(balanced.filter(pl.col("split") == "dev")["doc_id"])
    if not variant.get("generated", True):
        generated = generated.head(0)
    if "task_types" in variant:
        generated = generated.filter(pl.col("task_type").is_in(variant["task_types"]))
    pseudo = structural.filter(~pl.col("doc_id").is_in(list(dev_docs)))
    share = variant.get("structural_share", 0.0)
    rows = with_structural(generated.drop("generator", strict=False), pseudo, share, seed)
    return rows.select([c for c in COLUMNS if c in rows.columns])


def selected_pairs(pairs: pl.DataFrame, variant: dict[str, Any]) -> pl.DataFrame:
    """Mined pairs a variant keeps: by the positive's score or rank, with or without hard negatives."""
    if "min_positive_score" in variant:
        pairs = pairs.filter(pl.col("positive_score") >= variant["min_positive_score"])
    if "max_positive_rank" in variant:
        pairs = pairs.filter(pl.col("positive_rank") <= variant["max_positive_rank"])
    if not variant.get("hard_negatives", True):
        pairs = pairs.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("negatives"))
    return pairs


def positive_documents(pairs: pl.DataFrame) -> set[str]:
    """The documents that were a training positive: every pair's but a classification pair's, whose
    document is the anchor and whose positive is a label.

    >>> positive_documents(pl.DataFrame({"doc_id": ["d1", "d2"], "task_type": ["sts", "classification"]}))
    {'d1'}
    """
    return set(pairs.filter(pl.col("task_type") != "classification")["doc_id"])


def split_by_trained_documents(
    queries: dict[str, str], relevant: dict[str, set[str]], trained_docs: set[str]
) -> dict[str, tuple[dict[str, str], dict[str, set[str]]]]:
    """The eval queries cut in two: ``seen``, with a relevant document that was a training positive, and
    ``unseen``. Real pairs of one half of a set's queries share documents with the other half, so part of
    what they buy is those documents, not the queries' kind.

    >>> split = split_by_trained_documents({"q1": "a", "q2": "b"}, {"q1": {"d1"}, "q2": {"d2"}}, {"d1"})
    >>> {name: sorted(qs) for name, (qs, _) in split.items()}
    {'seen': ['q1'], 'unseen': ['q2']}
    """
    seen = {q for q, docs in relevant.items() if docs & trained_docs}
    return {
        name: ({q: queries[q] for q in ids}, {q: relevant[q] for q in ids})
        for name, ids in (("seen", sorted(seen)), ("unseen", sorted(set(relevant) - seen)))
    }


def seed_means(rows: list[dict[str, Any]], base: float) -> list[dict[str, Any]]:
    """One row per variant with its mean delta over the seeds it ran with (from the scores, not the
    rounded deltas), and the lowest and highest.

    >>> rows = [{"variant": "a", "seed": 1, "ndcg@10": 0.6625, "delta": 1.25},
    ...         {"variant": "a", "seed": 2, "ndcg@10": 0.6629, "delta": 1.29}]
    >>> seed_means(rows, base=0.65)
    [{'variant': 'a (mean)', 'seeds': [1, 2], 'delta': 1.27, 'min_delta': 1.25, 'max_delta': 1.29}]
    """
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    return [
        {
            "variant": f"{name} (mean)",
            "seeds": [r["seed"] for r in runs],
            "delta": round(100 * (sum(r["ndcg@10"] for r in runs) / len(runs) - base), 2),
            "min_delta": min(r["delta"] for r in runs),
            "max_delta": max(r["delta"] for r in runs),
        }
        for name, runs in by_variant.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--docs", required=True)
    parser.add_argument("--balanced", required=True, help="balanced pairs of variants naming none; dev split")
    parser.add_argument("--structural", required=True)
    parser.add_argument("--eval-set", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--variants", required=True, help="JSON list of variants")
    parser.add_argument("--device", help="overrides runtime.device")
    parser.add_argument("--embedder", help="overrides embedder.model (a local folder)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run every variant once per seed: its structural sample (with structural_share) and its "
        "training (initialisation, dropout, batch order); mining at negatives.sampling_strategy top is "
        "the same at every seed. Default: params' seed. With more than one, the table ends with each "
        "variant's mean",
    )
    parser.add_argument("--out", help="JSON file for the table")
    parser.add_argument(
        "--save-models",
        help="folder to keep each trained model in, as <variant>-seed<seed> (for benchmarks/model_soup.py)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    params = load_params(args.params)
    emb = params["embedder"] | ({"model": args.embedder} if args.embedder else {})
    device, seeds = args.device or params["runtime"]["device"], args.seeds or [params["seed"]]
    runtime = params["runtime"] | {"device": device}
    docs = pl.read_parquet(args.docs)
    dev = (
        pl.read_parquet(args.balanced)
        .filter(pl.col("split") == "dev")
        .select("task_type", "anchor", "positive")
    )
    beir = read_beir_set(args.eval_set, args.split)
    sets = {beir.name: (beir.queries, beir.relevant)}
    base_model = load_embedder(emb, device)
    base_documents = DocumentMemo(base_model)

    def ndcg(model, documents=None, subsets=None) -> dict[str, float]:
        chosen_sets = sets | (subsets or {})
        prompts = {name: emb["query_prompt"] for name in chosen_sets}
        scores = evaluate_model(model, beir.corpus, chosen_sets, prompts, 256, documents)
        return {name: scores[name]["ndcg@10"] for name in chosen_sets}

    base = ndcg(base_model, base_documents)[beir.name]
    rows = [{"variant": "base", "pairs": 0, "ndcg@10": round(base, 4), "delta": 0.0}]
    print(json.dumps(rows[0]), flush=True)
    mined: dict[str, pl.DataFrame] = {}
    variants = json.loads(Path(args.variants).read_text())
    for seed, variant in itertools.product(seeds, variants):
        data_choices = ("balanced", "structural", "generated", "task_types", "structural_share")
        data_key = json.dumps({k: variant.get(k) for k in data_choices} | {"seed": seed})
        if data_key not in mined:  # the base model mines; variants that only train differently share it
            balanced = pl.read_parquet(variant.get("balanced", args.balanced))
            structural = pl.read_parquet(variant.get("structural", args.structural))
            train_rows = training_rows(balanced, structural, variant, seed)
            mined[data_key], _ = mine_training_pairs(
                train_rows, docs, base_documents, emb, params["negatives"], params["search"], seed
            )
        cfg = validate_params(deep_merge(params, {"train": variant.get("train", {})}), variant["name"])[
            "train"
        ]
        if cfg["distillation"] and "teacher_scores" not in mined[data_key].columns:
            mined[data_key] = score_with_teacher(mined[data_key], params["negatives"]["teacher"], runtime)
        chosen = selected_pairs(mined[data_key], variant)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            train_embedder(chosen, dev, emb, cfg, seed, device, Path(tmp) / "model", Path(tmp))
            seconds = time.monotonic() - started
            if args.save_models:
                slug = re.sub(r"[^a-z0-9]+", "-", variant["name"].lower()).strip("-")
                shutil.copytree(Path(tmp) / "model", Path(args.save_models) / f"{slug}-seed{seed}")
            models = {variant["name"]: Path(tmp) / "model"}
            if (Path(tmp) / "model" / "merged").is_dir():
                models[variant["name"] + " (merged)"] = Path(tmp) / "model" / "merged"
            subsets = split_by_trained_documents(beir.queries, beir.relevant, positive_documents(chosen))
            base_subsets = ndcg(base_model, base_documents, subsets)
            for name, path in models.items():
                scores = ndcg(load_embedder(emb, device, path=str(path)), subsets=subsets)
                score = scores[beir.name]
                row = {"variant": name, "seed": seed, "pairs": chosen.height, "ndcg@10": round(score, 4)}
                row |= {"delta": round(100 * (score - base), 2), "train_s": round(seconds, 1)}
                for subset, (queries, _) in subsets.items():
                    row[f"{subset}_queries"] = len(queries)
                    row[f"delta_{subset}"] = round(100 * (scores[subset] - base_subsets[subset]), 2)
                if "teacher_scores" in chosen.columns:
                    row["teacher"] = teacher_agreement(chosen, cfg["teacher_temperature"])
                rows.append(row)
                print(json.dumps(row), flush=True)
    if len(seeds) > 1:
        for row in seed_means(rows[1:], base):
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
