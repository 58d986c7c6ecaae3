"""negatives: hard negatives for the training pairs: mined from the whole corpus with a false-negative
guard, other labels for classification pairs, the generator's own for code documents."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet
from synthembed.mine import label_negatives, mine_negatives, passages, with_llm_negatives
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--balanced", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
emb, cfg = params["embedder"], params["negatives"]

columns = ["doc_id", "task_type", "anchor", "positive", "label", "llm_negative"]
train = pl.read_parquet(args.balanced).filter(pl.col("split") == "train").select(columns)
corpus = passages(pl.read_parquet(args.docs))
model = load_embedder(emb, params["runtime"]["device"])
parts, dropped = [], {}
for (task_type,), group in train.group_by("task_type", maintain_order=True):
    if task_type == "classification":
        mined, dropped[task_type] = label_negatives(group, model, cfg["num_negatives"], emb["batch_size"])
    else:
        # Only retrieval anchors are queries; paraphrases and translations are encoded as documents are.
        prompt = emb["query_prompt"] if task_type == "retrieval" else ""
        mined, dropped[task_type] = mine_negatives(group, corpus, model, cfg, prompt, emb["batch_size"])
    parts.append(with_llm_negatives(mined))
empty = train.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("negatives"))
result = pl.concat(parts).sort("task_type", "doc_id", "anchor") if parts else empty
write_parquet(result, args.out)
write_json(
    {
        "read": train.height,
        "kept": result.height,
        "rejected": {"no_valid_negative": sum(dropped.values())},
        "no_valid_negative_by_task_type": dropped,
        "llm_negatives": int(result["llm_negative"].is_not_null().sum()),
    },
    args.out_stats,
)
