"""filtered: keep pairs whose generated text parsed, is well formed, does not loop or echo its prompt, is
not copied from its document, in the requested language, close to its document, finds its document
again, and is not a duplicate; every other row goes to the rejected file with its reason and scores.
Gathers the shards of scripts/filter_shard.py (per-row checks and vectors) and makes the decisions that
compare rows, column by column; the texts are read and written a slice at a time."""

from collections import Counter

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import read_passages
from synthembed.filtering import anchor_and_positive, cosine_thresholds, filter_decisions, gathered_scores
from synthembed.io import CHUNK_ROWS, read_arrays, read_rows, write_csv, write_json, write_parquet_row_groups
from synthembed.plots import histogram_png
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
round_trip = cfg["round_trip_top_k"] is not None

queries = pl.scan_parquet(args.queries)
doc_rows = pl.scan_parquet(args.docs).select("doc_id").with_row_index("doc_row")
# The columns the decisions need, one row per generated row; texts stay in the file.
rows = (
    queries.select("doc_id", "task_type")
    .with_row_index("row")
    .join(doc_rows, on="doc_id", how="left", maintain_order="left")
    .with_columns(pl.col("row", "doc_row").cast(pl.Int64))
    .collect()
)
n_docs = doc_rows.select(pl.len()).collect().item()
checks = pl.concat(pl.read_parquet(p) for p in shard_paths(args.shards_dir, params["shards"], ".parquet"))
checks = checks.sort("row")
if not checks["row"].equals(rows["row"], check_names=False):
    raise ValueError(
        f"{args.shards_dir}: the shards' checks miss rows of {args.queries} ({rows.height} rows)"
    )
if rows["doc_row"].null_count():
    row = rows.filter(pl.col("doc_row").is_null()).row(0, named=True)
    raise ValueError(
        f"{args.queries}: row {row['row']} names doc_id {row['doc_id']!r}, which is not in {args.docs}"
    )

vectors = [read_arrays(p) for p in shard_paths(args.shards_dir, params["shards"], ".npz")]
cosines, doc_ranks = gathered_scores(
    vectors,
    rows["doc_row"].to_numpy(),
    n_docs,
    (rows["task_type"] != "classification").to_numpy(),
    cfg["round_trip_top_k"],
    params["search"],
)
rows = rows.with_columns(
    pl.Series("cosine", cosines).fill_nan(None),
    pl.Series("doc_rank", doc_ranks).replace(-1, None),
    checks["detected_language"],
    checks["text_reason"],
    checks["anchor_key"],
)
thresholds = cosine_thresholds(rows.select("task_type", "cosine", "text_reason"), cfg)
rows = rows.with_columns(
    pl.col("task_type").replace_strict(thresholds, return_dtype=pl.Float64).alias("threshold"),
    (pl.lit(round_trip) & (pl.col("task_type") != "classification")).alias("round_trip"),
)


def anchor_texts(part: pl.DataFrame) -> list[str]:
    """The anchors of some rows: the generated text, or the document for classification."""
    documents = dict(
        read_passages(args.docs, part.filter(pl.col("task_type") == "classification")["doc_id"]).iter_rows()
    )
    texts = read_rows(args.queries, part["row"].to_numpy(), ["query"])["query"]
    return [
        anchor_and_positive(task_type, text, documents.get(doc_id, ""))[0]
        for task_type, text, doc_id in zip(part["task_type"], texts, part["doc_id"], strict=True)
    ]


# Several candidates of one configuration (queries.candidates > 1): the best one stays.
reasons = filter_decisions(rows, cfg, params["seed"], anchor_texts, ["doc_id", "task_type"])
decided = rows.select(
    pl.col("cosine"),
    pl.col("threshold").alias("cosine_threshold"),
    "doc_rank",
    "detected_language",
    reasons.alias("reason"),
)
query_schema = queries.collect_schema()
scored_schema = dict(query_schema) | {
    "anchor": pl.String,
    "positive": pl.String,
    "cosine": pl.Float64,
    "cosine_threshold": pl.Float64,
    "doc_rank": pl.Int64,
    "detected_language": pl.String,
}


def scored_slices(kept: bool):
    """The rows kept (or rejected, with their reason) with their pair and scores, a slice at a time."""
    for start in range(0, rows.height, CHUNK_ROWS):
        part = queries.slice(start, CHUNK_ROWS).collect()
        documents = dict(read_passages(args.docs, part["doc_id"]).iter_rows())
        anchors, positives = [], []
        for task_type, text, doc_id in part.select("task_type", "query", "doc_id").iter_rows():
            anchor, positive = anchor_and_positive(task_type, text or "", documents[doc_id])
            anchors.append(anchor)
            positives.append(positive)
        part = part.with_columns(
            pl.Series("anchor", anchors, dtype=pl.String), pl.Series("positive", positives, dtype=pl.String)
        ).hstack(decided.slice(start, CHUNK_ROWS))
        chosen = part.filter(pl.col("reason").is_null() == kept)
        yield chosen.drop("reason") if kept else chosen


kept_rows = write_parquet_row_groups(scored_slices(kept=True), scored_schema, args.out)
write_parquet_row_groups(scored_slices(kept=False), scored_schema | {"reason": pl.String}, args.out_rejected)
decision = pl.col("reason").fill_null("kept").alias("decision")
plotted = rows.with_columns(reasons.alias("reason")).select("task_type", "cosine", "doc_rank", decision)
plotted = plotted.drop_nulls("cosine")
write_csv(plotted, args.out_scores)
histogram_png(
    {
        d: plotted.filter(pl.col("decision") == d)["cosine"].to_list()
        for d in sorted(set(plotted["decision"]))
    },
    "cosine(generated text, document)",
    args.out_plot,
)
kept_by_task_type = rows.filter(reasons.is_null()).group_by("task_type").len().sort("task_type")
write_json(
    {
        "read": rows.height,
        "kept": kept_rows,
        "rejected": dict(Counter(r for r in reasons if r is not None)),
        "kept_by_task_type": dict(kept_by_task_type.iter_rows()),
        "cosine_thresholds": thresholds,
    },
    args.out_stats,
)
