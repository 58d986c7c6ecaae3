"""Training time of the two backends on the same pairs and the same randomly initialised Qwen3 (LoRA,
InfoNCE, same steps): sentence-transformers in-process, ms-swift through its command line (its start-up
included, as a pipeline run pays it).

    python benchmarks/backend_timing.py --negatives results/negatives.parquet --pairs 256 --steps 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import build_tiny_qwen3

from synthembed.params import load_params
from synthembed.swift import train_with_swift
from synthembed.train import train_embedder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--negatives", required=True, help="a negatives stage output")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    params = load_params(args.params)
    pairs = pl.read_parquet(args.negatives).filter(pl.col("task_type") == "retrieval").head(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_qwen3(Path(tmp) / "qwen3", args.hidden_size, args.layers)
        embedder = params["embedder"] | {"model": str(model), "pooling": "lasttoken", "max_seq_length": 128}
        train = params["train"] | {"max_steps": args.steps, "batch_size": 16, "loss": "mnrl"}
        train |= {"lora": train["lora"] | {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}}
        train |= {
            "ms_swift": train["ms_swift"] | {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
        }
        dev = pairs.head(0).select("task_type", "anchor", "positive")
        for backend in ("sentence-transformers", "ms-swift"):
            work = Path(tmp) / backend
            work.mkdir()
            started = time.monotonic()
            if backend == "ms-swift":
                run = train_with_swift(pairs, embedder, train, 0, "cpu", work / "model", work)
            else:
                run = train_embedder(pairs, dev, embedder, train, 0, "cpu", work / "model", work)
            seconds = time.monotonic() - started
            print(
                json.dumps(
                    {
                        "backend": backend,
                        "pairs": pairs.height,
                        "steps": len(run.history),
                        "seconds": round(seconds, 1),
                    }
                )
            )


if __name__ == "__main__":
    main()
