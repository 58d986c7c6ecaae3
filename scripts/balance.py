"""balanced: quotas per column, structural pseudo-queries mixed in at their share, then a seeded
train/dev split with no document on both sides. Decided on the key columns, then written in slices, so
memory does not grow with the text of the pairs."""

import polars as pl

from synthembed.balance import balance_plan, balanced_schema, balanced_slices
from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet_row_groups

parser = stage_parser(__doc__)
parser.add_argument("--filtered", required=True)
parser.add_argument("--structural", required=True, help="structural pseudo-query pairs")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["balance"]

keys = ["doc_id", "query", *cfg["quotas"]]
filtered = pl.scan_parquet(args.filtered).select(keys).with_row_index("row").collect()
structural = (
    pl.scan_parquet(args.structural).select("doc_id", "query", "kind").with_row_index("row").collect()
)
plan, quota_tables, left_out = balance_plan(
    filtered.with_columns(pl.col("row").cast(pl.Int64)),
    structural.with_columns(pl.col("row").cast(pl.Int64)),
    cfg,
    params["seed"],
)
write_parquet_row_groups(
    balanced_slices(plan, args.filtered, args.structural), balanced_schema(args.filtered), args.out
)
generated = plan.filter(pl.col("source") == "llm").height
write_json(
    {
        "read": filtered.height,  # generated pairs that passed the filter
        "kept": generated,
        "rejected": left_out,
        "structural": {"available": structural.height, "kept": plan.height - generated},
        "pairs": plan.height,
        "by_generator": dict(plan["generator"].value_counts().sort("generator").iter_rows()),
        "quotas": quota_tables,
        "split": dict(plan["split"].value_counts().sort("split").iter_rows()),
    },
    args.out_stats,
)
