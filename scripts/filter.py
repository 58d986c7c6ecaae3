"""filtered: keep pairs whose generated text parsed, is well formed, close to its document and not a
duplicate; every other row goes to the rejected file with its reason and score."""

from collections import Counter

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.filtering import anchor_and_positive, filter_decisions, format_reason, min_cosine
from synthembed.io import atomic_path, write_json, write_parquet
from synthembed.mine import passages
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--queries", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-rejected", required=True)
parser.add_argument("--out-scores", required=True, help="CSV of scores and decisions, for plots")
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg, emb = params["filter"], params["embedder"]

docs = pl.read_parquet(args.docs).select("doc_id", "title", "text")
pairs = pl.read_parquet(args.queries).join(docs, on="doc_id", how="left", maintain_order="left")
documents = passages(pairs)
texts, task_types = pairs["query"].to_list(), pairs["task_type"].to_list()
anchors, positives = zip(
    *(anchor_and_positive(t, q or "", d) for t, q, d in zip(task_types, texts, documents, strict=True)),
    strict=True,
)
pairs = pairs.with_columns(
    pl.Series("anchor", anchors, dtype=pl.String), pl.Series("positive", positives, dtype=pl.String)
).drop("title", "text")
scorable = [
    i
    for i, (q, e) in enumerate(zip(texts, pairs["parse_error"], strict=True))
    if e is None and q is not None and format_reason(q, cfg["min_words"], cfg["max_words"]) is None
]
scores: list[float | None] = [None] * len(texts)
if scorable:
    model = load_embedder(emb, params["runtime"]["device"])
    # Retrieval queries carry the query instruction; the other tasks are symmetric texts.
    q = model.encode_query(
        [(emb["query_prompt"] if task_types[i] == "retrieval" else "") + texts[i] for i in scorable],
        batch_size=emb["batch_size"],
        normalize_embeddings=True,
        convert_to_tensor=True,
        show_progress_bar=True,
    )
    d = model.encode_document(
        [documents[i] for i in scorable],
        batch_size=emb["batch_size"],
        normalize_embeddings=True,
        convert_to_tensor=True,
        show_progress_bar=True,
    )
    for i, score in zip(scorable, (q.float() * d.float()).sum(dim=1).tolist(), strict=True):
        scores[i] = score
thresholds = [min_cosine(cfg, t) for t in task_types]
decisions = filter_decisions(texts, list(anchors), pairs["parse_error"].to_list(), scores, thresholds, cfg)
scored = pairs.with_columns(
    pl.Series("cosine", scores, dtype=pl.Float64), pl.Series("reason", decisions, dtype=pl.String)
)
kept = scored.filter(pl.col("reason").is_null()).drop("reason")
rejected = scored.filter(pl.col("reason").is_not_null())
write_parquet(kept, args.out)
write_parquet(rejected, args.out_rejected)
with atomic_path(args.out_scores) as tmp:
    decision = pl.col("reason").fill_null("kept").alias("decision")
    scored.select("task_type", "cosine", decision).drop_nulls("cosine").write_csv(tmp)
write_json(
    {
        "read": pairs.height,
        "kept": kept.height,
        "rejected": dict(Counter(r for r in decisions if r is not None)),
        "kept_by_task_type": dict(kept.group_by("task_type").len().sort("task_type").iter_rows()),
    },
    args.out_stats,
)
