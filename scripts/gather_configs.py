"""configs: the shards of the configs stage put together in document order, with the statistics of the
whole run (achieved shares of every control, sources, LLM costs added up)."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.configs import achieved_shares, control_targets
from synthembed.io import read_json, write_json, write_parquet
from synthembed.shards import interleave, shard_paths, sum_stats

parser = stage_parser(__doc__)
parser.add_argument("--shards-dir", required=True, help="the shards' <id>.parquet and <id>.json")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)

frame = interleave([pl.read_parquet(p) for p in shard_paths(args.shards_dir, params["shards"], ".parquet")])
rows = frame.to_dicts()
persona_candidates = len(rows[0]["persona_candidates"]) if rows else 0
stats = sum_stats([read_json(p) for p in shard_paths(args.shards_dir, params["shards"], ".json")])
stats["config_source"] = dict(frame["config_source"].value_counts().sort("config_source").iter_rows())
stats["shares"] = achieved_shares(rows, control_targets(params["configs"], persona_candidates))
stats["with_domain_terms"] = int((frame["domain_terms"].list.len() > 0).sum())
stats["cross_lingual"] = int(frame["cross_lingual"].sum())
write_parquet(frame, args.out)
write_json(stats, args.out_stats)
