"""balanced: quotas per column, structural pseudo-queries mixed in at their share, then a seeded
train/dev split with no document on both sides."""

import polars as pl

from synthembed.balance import apply_quota, split_by_document, with_structural
from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet

parser = stage_parser(__doc__)
parser.add_argument("--filtered", required=True)
parser.add_argument("--structural", required=True, help="structural pseudo-query pairs")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["balance"]

frame = pl.read_parquet(args.filtered)
read = frame.height
quota_tables = {}
for column, shares in cfg["quotas"].items():
    frame, quota_tables[column] = apply_quota(frame, column, shares, cfg["max_pairs"], params["seed"])
generated = frame.height
structural = pl.read_parquet(args.structural)
frame = with_structural(frame, structural, cfg["structural_share"], params["seed"])
frame = split_by_document(frame.sort("doc_id", "query"), cfg["dev_fraction"], params["seed"])
write_parquet(frame, args.out)
write_json(
    {
        "read": read,  # generated pairs that passed the filter
        "kept": generated,
        "rejected": {"over_quota": read - generated},
        "structural": {"available": structural.height, "kept": frame.height - generated},
        "pairs": frame.height,
        "by_generator": dict(frame["generator"].value_counts().sort("generator").iter_rows()),
        "quotas": quota_tables,
        "split": dict(frame["split"].value_counts().sort("split").iter_rows()),
    },
    args.out_stats,
)
