"""negatives: hard negatives for the training pairs, mined from the whole corpus with a false-negative
guard."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet
from synthembed.mine import mine_negatives, passages
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--balanced", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
emb = params["embedder"]

train = (
    pl.read_parquet(args.balanced).filter(pl.col("split") == "train").select("doc_id", "query", "positive")
)
corpus = passages(pl.read_parquet(args.docs))
model = load_embedder(emb, params["runtime"]["device"])
mined, dropped = mine_negatives(
    train, corpus, model, params["negatives"], emb["query_prompt"], emb["batch_size"]
)
write_parquet(mined, args.out)
write_json(
    {"read": train.height, "kept": mined.height, "rejected": {"no_valid_negative": dropped}}, args.out_stats
)
