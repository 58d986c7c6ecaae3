"""queries: the shards of the queries stage put together, in the order one job writes them, with their
statistics added up."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import read_json, write_json, write_parquet
from synthembed.shards import gather_rows, shard_paths, sum_stats

parser = stage_parser(__doc__)
parser.add_argument("--configs", required=True)
parser.add_argument("--shards-dir", required=True, help="the shards' <id>.parquet and <id>.json")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)

order = pl.read_parquet(args.configs)["doc_id"].to_list()
parts = [pl.read_parquet(p) for p in shard_paths(args.shards_dir, params["shards"], ".parquet")]
write_parquet(gather_rows(parts, order), args.out)
stats = [read_json(p) for p in shard_paths(args.shards_dir, params["shards"], ".json")]
write_json(sum_stats(stats), args.out_stats)
