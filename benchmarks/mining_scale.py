"""Wall time and peak memory of hard-negative mining at 50k, 100k and 200k documents (as many
queries), synthembed's miner against sentence_transformers.util.mine_hard_negatives on the same data.

    python benchmarks/mining_scale.py --sizes 50000 100000 200000 --out results/bench/mining.json

What is measured is mining itself (search, candidate selection, memory), so encoding is taken out:
both miners get the same encoder, which looks texts up in precomputed 384-dimensional unit vectors
(MiniLM's size). Document vectors are random; a query's vector is its document's plus noise, so
every query has a clear positive and a realistic spread of hard candidates. Each run is a fresh
process; peak RSS is that process's maximum resident set. synthembed runs with exact search and with
the faiss inverted-file index (approximate; the recall of its negatives against exact search is not
measured here). Both miners get the same parameters (3
negatives, ranks 0-50, relative margin 0.05).
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

MINING = {
    "num_negatives": 3,
    "range_min": 0,
    "range_max": 50,
    "max_score": None,
    "relative_margin": 0.05,
    "absolute_margin": None,
    "sampling_strategy": "top",
}


class LookupEncoder:
    """The encoder interface both miners use, answering from precomputed vectors (text "d12" is
    document 12, "q12" its query)."""

    def __init__(self, n: int, dim: int = 384, seed: int = 0):
        import torch

        rng = np.random.default_rng(seed)
        docs = rng.standard_normal((n, dim), dtype=np.float32)
        queries = docs + 1.2 * rng.standard_normal((n, dim), dtype=np.float32)
        self.vectors = {
            "d": docs / np.linalg.norm(docs, axis=1, keepdims=True),
            "q": queries / np.linalg.norm(queries, axis=1, keepdims=True),
        }
        self.dim = dim
        self.device = torch.device("cpu")
        self.model_card_data = type("Card", (), {"base_model": "lookup"})()

    def lookup(self, texts: list[str], **_) -> np.ndarray:
        kinds = {t[0] for t in texts}
        assert len(kinds) == 1, "one kind of text per call"
        return self.vectors[kinds.pop()][[int(t[1:]) for t in texts]]

    encode_document = encode_query = lookup

    def get_embedding_dimension(self) -> int:
        return self.dim

    def similarity(self, a, b):
        import torch

        return torch.as_tensor(a) @ torch.as_tensor(b).T

    def similarity_pairwise(self, a, b):
        import torch

        return (torch.as_tensor(a) * torch.as_tensor(b)).sum(dim=1)


def run_one(method: str, n: int) -> dict:
    import polars as pl

    documents, queries = [f"d{i}" for i in range(n)], [f"q{i}" for i in range(n)]
    model = LookupEncoder(n)
    started = time.perf_counter()
    if method.startswith("synthembed"):
        from synthembed.mine import mine_negatives

        search = {"method": method.removeprefix("synthembed-"), "ivf_list_size": 1000, "ivf_probe": 16}
        pairs = pl.DataFrame({"anchor": queries, "positive": documents})
        mined, _ = mine_negatives(pairs, documents, model, MINING, "", 256, search, 0)
        kept = mined.height
    else:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        options = {k: v for k, v in MINING.items() if k not in ("max_score",)}
        mined = mine_hard_negatives(
            Dataset.from_dict({"anchor": queries, "positive": documents}),
            model,
            corpus=documents,
            output_format="n-tuple",
            batch_size=256,
            verbose=False,
            **options,
        )
        kept = len(mined)
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "method": method,
        "documents": n,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak_gib, 2),
        "pairs_kept": kept,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50000, 100000, 200000])
    parser.add_argument(
        "--methods", nargs="+", default=["synthembed-exact", "synthembed-faiss", "sentence-transformers"]
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # method, size: run in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        sys.exit(0)
    results = []
    for n in args.sizes:
        for method in args.methods:
            done = subprocess.run(
                [sys.executable, __file__, "--out", args.out, "--one", method, str(n)],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            else:
                results.append(
                    {
                        "method": method,
                        "documents": n,
                        "failed": done.returncode,
                        "error": done.stderr.strip().splitlines()[-1:],
                    }
                )
            print(json.dumps(results[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
