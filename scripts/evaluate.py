"""metrics: base vs tuned retrieval metrics on the synthetic dev split and every real eval set, plus
stage counts."""

from pathlib import Path

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.evaluate import compare, eval_sets, evaluate_model
from synthembed.io import atomic_path, read_json, write_json
from synthembed.mine import passages
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--model", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--eval", required=True, help="judgments of the real eval sets")
parser.add_argument("--balanced", required=True, help="its dev split becomes the synthetic_dev eval set")
parser.add_argument("--stats", nargs="+", required=True, help="stage statistics to include as counts")
parser.add_argument("--out", required=True)
parser.add_argument("--out-plot", required=True, help="CSV of nDCG@10 per set and model")
args, params = start_stage(parser)
emb, batch_size = params["embedder"], params["evaluate"]["batch_size"]

docs = pl.read_parquet(args.docs)
corpus = dict(zip(docs["doc_id"], passages(docs), strict=True))
dev = pl.read_parquet(args.balanced).filter(pl.col("split") == "dev")
synthetic = dev.select(
    pl.lit("synthetic_dev").alias("eval_set"),
    pl.col("doc_id").alias("query_id"),
    "query",
    "doc_id",
    pl.lit(1, dtype=pl.Int64).alias("score"),
)
sets = eval_sets(pl.concat([pl.read_parquet(args.eval), synthetic]))
device = params["runtime"]["device"]
base = evaluate_model(load_embedder(emb, device), corpus, sets, emb["query_prompt"], batch_size)
tuned = evaluate_model(
    load_embedder(emb, device, path=args.model), corpus, sets, emb["query_prompt"], batch_size
)
results = compare(base, tuned)
counts = {Path(p).stem: read_json(p) for p in args.stats}
write_json({"eval": results, "counts": counts}, args.out)
rows = [
    {"run": f"{s} {m}", "eval_set": s, "model": m, "ndcg@10": results[s][m]["ndcg@10"]}
    for s in results
    for m in ("base", "tuned")
]
with atomic_path(args.out_plot) as tmp:
    pl.DataFrame(rows).write_csv(tmp)
