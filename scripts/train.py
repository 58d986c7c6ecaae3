"""model: fine-tune the embedder on the mined pairs with InfoNCE (LoRA or full); save a loadable model."""

import logging
import tempfile
import time
from pathlib import Path

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import atomic_path, write_json
from synthembed.train import train_embedder

parser = stage_parser(__doc__)
parser.add_argument("--negatives", required=True)
parser.add_argument("--out", required=True, help="model folder")
parser.add_argument("--out-curve", required=True, help="CSV of the training loss per step")
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)

pairs = pl.read_parquet(args.negatives)
started = time.monotonic()
with atomic_path(args.out, directory=True) as model_dir, tempfile.TemporaryDirectory() as work_dir:
    history = train_embedder(
        pairs,
        params["embedder"],
        params["train"],
        params["seed"],
        params["runtime"]["device"],
        model_dir,
        Path(work_dir),
    )
logging.getLogger("synthembed").info(
    "trained in %.1f s; final loss %s", time.monotonic() - started, history[-1]["loss"] if history else None
)
curve = pl.DataFrame(
    history, schema={"step": pl.Float64, "epoch": pl.Float64, "loss": pl.Float64, "learning_rate": pl.Float64}
).with_columns(pl.col("step").cast(pl.Int64))
with atomic_path(args.out_curve) as tmp:
    curve.write_csv(tmp)
# Only deterministic facts: Snakemake compares this file's checksum to decide what is stale.
write_json(
    {"pairs": pairs.height, "steps": curve.height, "method": params["train"]["method"]}, args.out_stats
)
