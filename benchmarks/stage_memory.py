"""Wall time and peak memory of the docs, filtered and balanced stages (the real scripts) at corpus sizes
such as 100,000 and 1,000,000 documents, on synthetic inputs written first.

The filtered stage (its shard job, then its gather) runs with a tiny randomly initialised embedder
(tests/tiny_models.py: one BERT layer of width 32 behind MiniLM's tokenizer, 16 tokens): the figures
are the stage's own work (reading, the checks that need no model, language identification, tokenizing,
vectors, duplicates, decisions, writing), not the embedding model's, which scales with the model chosen
and the device.

    python benchmarks/stage_memory.py --params params.yaml --workdir /tmp/stage-memory --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from synthembed.structural import PAIR_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
TOPIC_WORDS = """protein folding measured buffer tidal energy turbine glacier lake violin varnish compiler
inline bee dance concrete curing soil vineyard magnetic field migration sourdough starter flour water"""
WORDS = np.array(TOPIC_WORDS.split())


def synthetic_corpus(path: Path, n: int, seed: int) -> None:
    """``n`` JSONL documents of 60 words (about 450 characters), written in chunks."""
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        for start in range(0, n, 100_000):
            count = min(100_000, n - start)
            words = WORDS[rng.integers(0, len(WORDS), size=(count, 61))]
            for i, row in enumerate(words, start=start):
                record = {"_id": f"d{i:07d}", "title": row[0], "text": " ".join(row[1:])}
                handle.write(json.dumps(record) + "\n")


def synthetic_queries(path: Path, n: int, seed: int) -> None:
    """``n`` generated rows, one per document, with the columns the filtered stage reads; a tenth of them
    repeat an earlier text, so the duplicate checks have work."""
    rng = np.random.default_rng(seed)
    task_types = np.array(["retrieval", "sts", "classification", "bitext"])[rng.integers(0, 4, n)]
    texts = [" ".join(WORDS[rng.integers(0, len(WORDS), 8)]) + f" {i}" for i in range(n)]
    repeats = rng.integers(0, n, n // 10)
    for i, j in zip(range(0, n, 10), repeats, strict=False):
        texts[i] = texts[j]
    pl.DataFrame(
        {
            "doc_id": [f"d{i:07d}" for i in range(n)],
            "task_type": task_types,
            "language": ["en"] * n,
            "doc_language": ["en"] * n,
            "template": task_types,
            "candidate": [0] * n,
            "query": texts,
            "parse_error": pl.Series([None] * n, dtype=pl.String),
        }
    ).write_parquet(path)


def synthetic_filtered(path: Path, structural: Path, n: int, seed: int) -> None:
    """``n`` filtered rows with the columns the balanced stage reads, and ``n`` structural pairs."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"d{i:07d}" for i in range(n)]
    task_types = np.array(["retrieval", "sts", "classification", "bitext"])[rng.integers(0, 4, n)]
    question_types = np.array(["keywords", "acquire_knowledge", "summary", "yes_or_no", "background"])
    texts = [" ".join(WORDS[rng.integers(0, len(WORDS), 8)]) for _ in range(min(n, 10_000))]
    pl.DataFrame(
        {
            "doc_id": doc_ids,
            "task_type": task_types,
            "question_type": question_types[rng.integers(0, 5, n)],
            "query": [texts[i % len(texts)] + f" {i}" for i in range(n)],
            "anchor": [texts[i % len(texts)] + f" {i}" for i in range(n)],
            "positive": [texts[(i * 7) % len(texts)] for i in range(n)],
            "language": ["en"] * n,
            "doc_language": ["en"] * n,
        }
    ).write_parquet(path)
    pl.DataFrame(
        {
            "doc_id": doc_ids,
            "kind": ["title"] * n,
            "query": [texts[i % len(texts)] for i in range(n)],
            "positive": [texts[(i * 3) % len(texts)] for i in range(n)],
            "lang": ["en"] * n,
        },
        schema=PAIR_SCHEMA,
    ).write_parquet(structural)


# A child's peak RSS counts what it shared with its parent before exec: start each stage from a small
# Python process, not from this one, which holds the synthetic data.
LAUNCHER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def measured(command: list[str]) -> dict[str, float]:
    """Run a stage; its wall time and its own peak resident memory."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, capture_output=True, text=True, check=True
    )
    peak_kb = int(result.stdout.split()[-1])
    return {"wall_s": round(time.monotonic() - started, 1), "peak_rss_mb": round(peak_kb / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=STAGES)
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_bert

    from synthembed.models import embedded_path

    tiny_embedder = build_tiny_bert(args.workdir / "tiny-embedder", embedded_path("all-minilm-l6-v2"))
    rows = []
    for n in args.sizes:
        folder = args.workdir / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_corpus(folder / "corpus.jsonl", n, seed=n)
        synthetic_queries(folder / "queries.parquet", n, seed=n)
        synthetic_filtered(folder / "filtered.parquet", folder / "structural.parquet", n, seed=n)
        params = yaml.safe_load(Path(args.params).read_text())
        params["docs"] |= {"source": "jsonl", "path": str(folder / "corpus.jsonl"), "max_docs": None}
        params["balance"] |= {"structural_share": 0.5, "max_pairs": n}
        params["embedder"] |= {"model": str(tiny_embedder), "pooling": "mean", "encode_dtype": "float32"}
        params["embedder"] |= {"max_seq_length": 16, "batch_size": 512}
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
        for stage in args.stages:
            command = [sys.executable, *stage_arguments(stage, folder)]
            rows.append({"stage": stage, "rows": n, **measured(command)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


STAGES = ["docs", "filtered_shard", "filtered", "balanced"]


def stage_arguments(stage: str, folder: Path) -> list[str]:
    """The stage's script and arguments over the synthetic inputs in ``folder`` (docs runs first: the
    filtered stage reads its documents)."""
    files = {name: str(folder / name) for name in ("params.yaml", "docs.parquet", "queries.parquet")}
    corpus = ["--queries", files["queries.parquet"], "--docs", files["docs.parquet"]]
    shard = ["--out", str(folder / "shards" / "0.parquet"), "--out-vectors", str(folder / "shards" / "0.npz")]
    arguments = {
        "docs": [
            "scripts/docs.py",
            *("--out-docs", files["docs.parquet"], "--out-eval", str(folder / "eval.parquet")),
            *(
                "--out-rejected",
                str(folder / "docs_rejected.parquet"),
                "--out-stats",
                str(folder / "docs.json"),
            ),
        ],
        "filtered_shard": [
            "scripts/filter_shard.py",
            *corpus,
            *("--few-shot-prompt", "prompts/queries_few_shot.yaml"),
            *("--report-prompt", "prompts/queries_report.yaml", "--shard", "0", *shard),
        ],
        "filtered": [
            "scripts/filter.py",
            *corpus,
            *("--shards-dir", str(folder / "shards"), "--out", str(folder / "kept.parquet")),
            *(
                "--out-rejected",
                str(folder / "filter_rejected.parquet"),
                "--out-stats",
                str(folder / "f.json"),
            ),
            *("--out-scores", str(folder / "scores.csv"), "--out-plot", str(folder / "scores.png")),
        ],
        "balanced": [
            "scripts/balance.py",
            *(
                "--filtered",
                str(folder / "filtered.parquet"),
                "--structural",
                str(folder / "structural.parquet"),
            ),
            *("--out", str(folder / "balanced.parquet"), "--out-stats", str(folder / "balanced.json")),
        ],
    }
    return [*arguments[stage][:1], "--params", files["params.yaml"], *arguments[stage][1:]]


if __name__ == "__main__":
    main()
