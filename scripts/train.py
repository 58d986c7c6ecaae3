"""model: fine-tune the embedder on the mined pairs with InfoNCE (sentence-transformers: LoRA or full;
ms-swift: LoRA); save a model SentenceTransformer(path) loads, and the slerp merge of its checkpoints."""

import logging
import tempfile
import time
from pathlib import Path

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import atomic_path, write_csv, write_json
from synthembed.swift import train_with_swift
from synthembed.train import train_embedder

parser = stage_parser(__doc__)
parser.add_argument("--negatives", required=True)
parser.add_argument("--balanced", required=True, help="its dev split gives the eval loss per checkpoint")
parser.add_argument("--out", required=True, help="model folder")
parser.add_argument("--out-curve", required=True, help="CSV of the training loss per step")
parser.add_argument(
    "--out-eval-curve", required=True, help="CSV of the dev loss per checkpoint and task type"
)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["train"]

pairs = pl.read_parquet(args.negatives)
dev = (
    pl.read_parquet(args.balanced).filter(pl.col("split") == "dev").select("task_type", "anchor", "positive")
)
started = time.monotonic()
with atomic_path(args.out, directory=True) as model_dir, tempfile.TemporaryDirectory() as work_dir:
    common = (params["embedder"], cfg, params["seed"], params["runtime"]["device"], model_dir, Path(work_dir))
    if cfg["backend"] == "ms-swift":
        run = train_with_swift(pairs, *common)
    else:
        run = train_embedder(pairs, dev, *common)
seconds = time.monotonic() - started
logging.getLogger("synthembed").info(
    "trained in %.1f s; %d steps; final loss %s",
    seconds,
    len(run.history),
    run.history[-1]["loss"] if run.history else None,
)
curve = pl.DataFrame(
    run.history,
    schema={"step": pl.Int64, "epoch": pl.Float64, "loss": pl.Float64, "learning_rate": pl.Float64},
)
eval_curve = pl.DataFrame(
    run.eval_history, schema={"step": pl.Int64, "task_type": pl.String, "eval_loss": pl.Float64}
)
write_csv(curve, args.out_curve)
write_csv(eval_curve, args.out_eval_curve)
# Only deterministic facts: Snakemake compares this file's checksum to decide what is stale.
write_json(
    {
        "pairs": pairs.height,
        "dev_pairs": dev.height,
        "steps": curve.height,
        "checkpoints": len(run.checkpoints),
        "backend": cfg["backend"],
        "method": cfg["method"],
        "merged": cfg["merge"]["method"] != "none",
    },
    args.out_stats,
)
