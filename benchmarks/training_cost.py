"""Seconds per training step and peak memory of one `train` setting on the first retrieval pairs of a
negatives stage output: the cost of `train.dtype`, `train.loss` and `train.method` on this machine.
One setting per process, so the peak RSS is that setting's own:

    python benchmarks/training_cost.py --negatives results/negatives.parquet --pairs 64 \
        --set method=full --set loss=cached_mnrl --set dtype=bfloat16
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

from synthembed.params import load_params
from synthembed.train import train_embedder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--negatives", required=True, help="a negatives stage output")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a `train` param (YAML value)"
    )
    args = parser.parse_args()
    params = load_params(args.params)
    settings = {key: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in args.set)}
    train = params["train"] | {"checkpoints": 1} | settings  # one checkpoint: no time spent saving
    pairs = pl.read_parquet(args.negatives).filter(pl.col("task_type") == "retrieval").head(args.pairs)
    dev = pairs.head(0).select("task_type", "anchor", "positive")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        run = train_embedder(
            pairs, dev, params["embedder"], train, params["seed"], "cpu", Path(tmp) / "m", Path(tmp)
        )
        seconds = time.monotonic() - started
    steps = len(run.history)
    texts = 2 + len(pairs["negatives"][0])
    print(
        json.dumps(
            settings
            | {
                "pairs": pairs.height,
                "texts_per_pair": texts,
                "steps": steps,
                "seconds": round(seconds, 1),
                "seconds_per_step": round(seconds / steps, 1),
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
