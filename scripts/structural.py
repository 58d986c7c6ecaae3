"""structural: pseudo-queries the corpus states itself (title -> text, heading -> section, docstring
summary -> code without it, first sentence -> the rest, last sentence -> the rest, a reported finding ->
the rest: the kinds structural.kinds names), with no generator."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet
from synthembed.structural import structural_pairs

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)

pairs, stats = structural_pairs(pl.read_parquet(args.docs), params["structural"], params["seed"])
write_parquet(pairs, args.out)
write_json(stats, args.out_stats)
