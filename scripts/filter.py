"""filtered: keep pairs whose generated text parsed, is well formed, does not loop or echo its prompt, is
not copied from its document, in the requested language, close to its document, finds its document
again, and is not a duplicate; every other row goes to the rejected file with its reason and scores.
Gathers the shards of scripts/filter_shard.py (per-row checks and vectors) and makes the decisions that
compare rows."""

from collections import Counter

import numpy as np
import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages
from synthembed.filtering import (
    anchor_and_positive,
    best_candidates,
    cosine_thresholds,
    filter_decisions,
)
from synthembed.io import read_arrays, write_csv, write_json, write_parquet
from synthembed.plots import histogram_png
from synthembed.search import rank_of
from synthembed.shards import shard_paths

parser = stage_parser(__doc__)
parser.add_argument("--queries", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--shards-dir", required=True, help="the shards' <id>.parquet and <id>.npz")
parser.add_argument("--out", required=True)
parser.add_argument("--out-rejected", required=True)
parser.add_argument("--out-scores", required=True, help="CSV of scores and decisions, for plots")
parser.add_argument("--out-plot", required=True, help="PNG histogram of the cosine scores, kept vs rejected")
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["filter"]

docs = pl.read_parquet(args.docs)
corpus = passages(docs)
doc_row = {doc_id: i for i, doc_id in enumerate(docs["doc_id"])}
pairs = pl.read_parquet(args.queries)
doc_index = np.array([doc_row[d] for d in pairs["doc_id"]], dtype=np.int64)
documents = [corpus[i] for i in doc_index]
texts, task_types = pairs["query"].to_list(), pairs["task_type"].to_list()
anchors, positives = zip(
    *(anchor_and_positive(t, q or "", d) for t, q, d in zip(task_types, texts, documents, strict=True)),
    strict=True,
)
checks = pl.concat(pl.read_parquet(p) for p in shard_paths(args.shards_dir, params["shards"], ".parquet"))
checks = checks.sort("row").to_dict(as_series=False)
if checks["row"] != list(range(len(texts))):
    raise ValueError(f"{args.shards_dir}: the shards' checks miss rows of {args.queries} ({len(texts)} rows)")
vectors = [read_arrays(p) for p in shard_paths(args.shards_dir, params["shards"], ".npz")]
query_rows = np.concatenate([v["query_rows"] for v in vectors])
n = len(texts)
cosines: list[float | None] = [None] * n
doc_ranks: list[int | None] = [None] * n
if len(query_rows):
    order = np.argsort(query_rows)
    scored_rows = query_rows[order]
    text_vectors = np.concatenate([v["query_vectors"] for v in vectors if len(v["query_rows"])])[order]
    doc_vectors = np.zeros((len(corpus), text_vectors.shape[1]), dtype=np.float32)
    for part in vectors:
        if len(part["doc_rows"]):
            doc_vectors[part["doc_rows"]] = part["doc_vectors"]
    pair_scores = (text_vectors * doc_vectors[doc_index[scored_rows]]).sum(axis=1)
    for i, score in zip(scored_rows.tolist(), pair_scores.tolist(), strict=True):
        cosines[i] = score
    if cfg["round_trip_top_k"] is not None:
        searched = [j for j, i in enumerate(scored_rows) if task_types[i] != "classification"]
        ranks = rank_of(
            text_vectors[searched],
            doc_vectors,
            doc_index[scored_rows[searched]],
            cfg["round_trip_top_k"],
            params["search"],
        )
        for j, rank in zip(searched, ranks, strict=True):
            doc_ranks[scored_rows[j]] = rank
detected = checks["detected_language"]
thresholds = cosine_thresholds(task_types, cosines, cfg)
rows = []
for i in range(n):
    row = {
        "query": texts[i],
        "anchor": anchors[i],
        "parse_error": pairs["parse_error"][i],
        "cosine": cosines[i],
        "threshold": thresholds[task_types[i]],
        "copied": checks["copied"][i],
        "detected_language": detected[i],
        "language": pairs["language"][i],
        "repetitive": checks["repetitive"][i],
        "echo": checks["echo"][i],
    }
    if cfg["round_trip_top_k"] is not None and task_types[i] != "classification":
        row["doc_rank"] = doc_ranks[i]
    rows.append(row)
decisions = filter_decisions(rows, cfg, params["seed"])
# Several candidates of one configuration (queries.candidates > 1): the best one stays.
keys = list(zip(pairs["doc_id"], pairs["task_type"], strict=True))
decisions = best_candidates(keys, decisions, doc_ranks, cosines)
scored = pairs.with_columns(
    pl.Series("anchor", anchors, dtype=pl.String),
    pl.Series("positive", positives, dtype=pl.String),
    pl.Series("cosine", cosines, dtype=pl.Float64),
    pl.Series("cosine_threshold", [r["threshold"] for r in rows], dtype=pl.Float64),
    pl.Series("doc_rank", doc_ranks, dtype=pl.Int64),
    pl.Series("detected_language", detected, dtype=pl.String),
    pl.Series("reason", decisions, dtype=pl.String),
)
kept = scored.filter(pl.col("reason").is_null()).drop("reason")
rejected = scored.filter(pl.col("reason").is_not_null())
write_parquet(kept, args.out)
write_parquet(rejected, args.out_rejected)
decision = pl.col("reason").fill_null("kept").alias("decision")
plotted = scored.select("task_type", "cosine", "doc_rank", decision).drop_nulls("cosine")
write_csv(plotted, args.out_scores)
histogram_png(
    {
        d: plotted.filter(pl.col("decision") == d)["cosine"].to_list()
        for d in sorted(set(plotted["decision"]))
    },
    "cosine(generated text, document)",
    args.out_plot,
)
write_json(
    {
        "read": pairs.height,
        "kept": kept.height,
        "rejected": dict(Counter(r for r in decisions if r is not None)),
        "kept_by_task_type": dict(kept.group_by("task_type").len().sort("task_type").iter_rows()),
        "cosine_thresholds": thresholds,
    },
    args.out_stats,
)
