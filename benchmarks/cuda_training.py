"""The CUDA path of training, on a randomly initialised Qwen3 built on the spot (no hub): LoRA and full,
plain and cached InfoNCE, the false-negative mask and the slerp merge, each trained, saved, reloaded and
used to encode in the dtype evaluation uses. Prints one JSON line per variant with its time.

    python benchmarks/cuda_training.py --device cuda --pairs 2048 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import TINY_TEXTS, build_tiny_qwen3

from synthembed.models import load_embedder
from synthembed.train import train_embedder

VARIANTS = {
    "lora mnrl": {},
    "lora cached_mnrl": {"loss": "cached_mnrl"},
    "full mnrl + false-negative mask": {
        "method": "full",
        "learning_rate": 2e-5,
        "false_negative_margin": 0.1,
    },
    "full cached_mnrl + mask + slerp": {
        "method": "full",
        "learning_rate": 2e-5,
        "loss": "cached_mnrl",
        "false_negative_margin": 0.1,
        "merge": {"method": "slerp", "checkpoints": 2, "base_share": 0.0},
    },
}


def synthetic_pairs(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    texts = sorted(set(TINY_TEXTS))
    rows = []
    for i in range(n):
        words = " ".join(rng.sample(texts, 2))
        rows.append(
            (f"query {i}: {words[:40]}", f"document {i}: {words}", [f"other {i}: {rng.choice(texts)}"])
        )
    anchors, positives, negatives = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "task_type": ["retrieval"] * n,
            "anchor": anchors,
            "positive": positives,
            "negatives": list(negatives),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(), "device": args.device}))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_qwen3(Path(tmp) / "qwen3", args.hidden_size, args.layers)
        embedder = {
            "model": str(model_dir),
            "pooling": "lasttoken",
            "padding_side": "auto",
            "max_seq_length": 64,
            "encode_dtype": "auto",
            "query_prompt": "Instruct: Given a query, retrieve documents\nQuery:",
        }
        train = {
            "backend": "sentence-transformers",
            "method": "lora",
            "loss": "mnrl",
            "mini_batch_size": 32,
            "temperature": 0.05,
            "false_negative_margin": None,
            "distillation": 0.0,
            "teacher_temperature": 1.0,
            "epochs": 1,
            "max_steps": -1,
            "batch_size": args.batch_size,
            "learning_rate": 2e-4,
            "warmup_ratio": 0.1,
            "checkpoints": 3,
            "merge": {"method": "none", "checkpoints": 2, "base_share": 0.0},
            "lora": {
                "r": 16,
                "alpha": 32,
                "dropout": 0.1,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            },
        }
        pairs, dev = synthetic_pairs(args.pairs, 0), synthetic_pairs(64, 1).drop("negatives")
        probe = ["query 1: protein folding", "document 1: the mitochondria produce energy"]
        base = load_embedder(embedder, args.device).encode(probe)
        for name, changes in VARIANTS.items():
            run_dir = Path(tmp) / name.replace(" ", "_")
            run_dir.mkdir()
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.monotonic()
            run = train_embedder(
                pairs, dev, embedder, train | changes, 0, args.device, run_dir / "model", run_dir
            )
            seconds = time.monotonic() - started
            tuned = load_embedder(embedder, args.device, path=str(run_dir / "model"))
            after = tuned.encode(probe)
            row = {
                "variant": name,
                "steps": len(run.history),
                "first_loss": round(run.history[0]["loss"], 4),
                "last_loss": round(run.history[-1]["loss"], 4),
                "dev_losses": len(run.eval_history),
                "train_s": round(seconds, 1),
                "encode_dtype": str(next(tuned.parameters()).dtype),
                "changed": float(np.abs(after - base).max()) > 1e-4,
                "merged": (run_dir / "model" / "merged").is_dir(),
            }
            if args.device == "cuda":
                row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
