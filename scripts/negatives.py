"""negatives: hard negatives for the training pairs: mined from the whole corpus with the false-negative
guards (classification pairs: among the labels), plus the generator's own for code documents; with
negatives.teacher.model set, a causal LM's log p(query | candidate) for each positive and negative."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet
from synthembed.mine import DocumentMemo, mine_training_pairs
from synthembed.models import load_embedder
from synthembed.plots import histogram_png
from synthembed.teacher import score_with_teacher, teacher_agreement

parser = stage_parser(__doc__)
parser.add_argument("--balanced", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument(
    "--out-margins-plot", required=True, help="PNG: s(q, d+) - s(q, d-) of the chosen negatives"
)
parser.add_argument("--out-rank-plot", required=True, help="PNG: rank of the positive among the candidates")
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
emb, cfg = params["embedder"], params["negatives"]

columns = ["doc_id", "task_type", "generator", "anchor", "positive", "label", "llm_negative"]
train = pl.read_parquet(args.balanced).filter(pl.col("split") == "train").select(columns)
docs = pl.read_parquet(args.docs)
model = DocumentMemo(load_embedder(emb, params["runtime"]["device"]))
result, stats = mine_training_pairs(train, docs, model, emb, cfg, params["search"], params["seed"])
if cfg["teacher"]["model"] is not None:
    result = score_with_teacher(result, cfg["teacher"], params["runtime"])
write_parquet(result, args.out)
margins = (
    result.select("task_type", "positive_score", "negative_scores")
    .explode("negative_scores")
    .select("task_type", (pl.col("positive_score") - pl.col("negative_scores")).alias("margin"))
)
histogram_png(
    {t: margins.filter(pl.col("task_type") == t)["margin"].drop_nans().to_list() for t in sorted(stats)},
    "s(q, d+) - s(q, d-) of the chosen negatives",
    args.out_margins_plot,
)
histogram_png(
    {
        t: result.filter(pl.col("task_type") == t)["positive_rank"].drop_nulls().to_list()
        for t in sorted(stats)
    },
    "rank of the positive among the anchor's candidates (0 = first)",
    args.out_rank_plot,
)
write_json(
    {
        "read": train.height,
        "kept": result.height,
        "rejected": {"no_valid_negative": sum(s["no_valid_negative"] for s in stats.values())},
        "by_task_type": stats,
        "llm_negatives": int(result["llm_negative"].is_not_null().sum()),
        "llm_negatives_rejected": sum(s["llm_negative_rejected"] for s in stats.values()),
    }
    | ({"teacher": teacher_agreement(result)} if "teacher_scores" in result.columns else {}),
    args.out_stats,
)
