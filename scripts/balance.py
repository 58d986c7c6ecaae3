"""balanced: quotas per column, then a seeded train/dev split with no document on both sides."""

import polars as pl

from synthembed.balance import apply_quota, split_by_document
from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet

parser = stage_parser(__doc__)
parser.add_argument("--filtered", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["balance"]

frame = pl.read_parquet(args.filtered)
read = frame.height
quota_tables = {}
for column, shares in cfg["quotas"].items():
    frame, quota_tables[column] = apply_quota(frame, column, shares, cfg["max_pairs"], params["seed"])
frame = split_by_document(frame.sort("doc_id", "query"), cfg["dev_fraction"], params["seed"])
write_parquet(frame, args.out)
write_json(
    {
        "read": read,
        "kept": frame.height,
        "rejected": {"over_quota": read - frame.height},
        "quotas": quota_tables,
        "split": dict(frame["split"].value_counts().sort("split").iter_rows()),
    },
    args.out_stats,
)
