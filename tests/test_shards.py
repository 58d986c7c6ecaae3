"""Sharded stages: configs, queries and filtered split into shards that run as parallel jobs and are
gathered back; every result is the one-shard result, byte for byte, under either engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import jsonl, make_project, openai_llm_params, run, scripted_server

SHARD_FILES = {"configs": ("json", "parquet"), "queries": ("json", "parquet"), "filtered": ("npz", "parquet")}
GATHERED = [
    "configs.parquet",
    "queries.parquet",
    "filtered.parquet",
    "rejected.parquet",
    "plots/filter_scores.csv",
]
TOPICS = ["tidal turbines", "sourdough starters", "glacier lakes", "violin varnish", "bee dances"]


def corpus(path: Path) -> Path:
    records = [
        {
            "_id": f"d{i:02d}",
            "title": TOPICS[i % 5],
            "text": f"Notes {i} on {TOPICS[i % 5]} and how they work.",
        }
        for i in range(30)
    ]
    path.write_bytes(jsonl(*records))
    return path


@pytest.mark.slow
def test_shards_gather_into_the_one_shard_result(tmp_path):
    source = corpus(tmp_path / "corpus.jsonl")
    runs = {
        "one shard, snakemake": ([0], ["snakemake", "--cores", "2", "--until", "filtered"]),
        "three shards, snakemake": ([0, 1, 2], ["snakemake", "--cores", "3", "--until", "filtered"]),
        "three shards, dvc": ([0, 1, 2], ["dvc", "repro", "filtered"]),
    }
    results = {}
    with scripted_server({}, tmp_path) as url:
        for name, (shards, command) in runs.items():
            folder = tmp_path / name.replace(" ", "_").replace(",", "")
            folder.mkdir()
            params = {
                "shards": shards,
                "docs": {"source": "jsonl", "path": str(source), "max_docs": None},
                "configs": {"n_docs": 30},
                # Report prompts show the server only the document, whose first words it answers with.
                "queries": {"candidates": 2, "prompt_style": "report"},
                # Batches of 8: each shard encodes some; the round trip embeds the whole corpus.
                "embedder": {"batch_size": 8},
                "filter": {"round_trip_top_k": 5, "min_cosine": 0.1, "copied_min_words": None},
                "llm": openai_llm_params(url, temperature=0.7),
            }
            project = make_project(folder, params, folder / "cache")
            run(command, project)
            results[name] = project / "results"
            for stage, written in SHARD_FILES.items():
                shard_files = sorted(p.name for p in (results[name] / "shards" / stage).iterdir())
                assert shard_files == sorted(f"{s}.{ext}" for s in shards for ext in written)
    reference = results["one shard, snakemake"]
    for name in ("three shards, snakemake", "three shards, dvc"):
        for data in GATHERED:
            assert (results[name] / data).read_bytes() == (reference / data).read_bytes(), data
        for stage in ("configs", "filtered"):
            assert (results[name] / "stats" / f"{stage}.json").read_text() == (
                reference / "stats" / f"{stage}.json"
            ).read_text()
        # Retries are how the run went, not what it wrote: three shards at once may meet a busy server.
        stats = json.loads((results[name] / "stats" / "queries.json").read_text())
        expected = json.loads((reference / "stats" / "queries.json").read_text())
        assert {k: v for k, v in stats.items() if k != "retries"} == {
            k: v for k, v in expected.items() if k != "retries"
        }
    assert json.loads((reference / "stats" / "queries.json").read_text())["written"] == 60
    filtered = json.loads((reference / "stats" / "filtered.json").read_text())
    # Rows were kept and rows were compared across shards (the five topics repeat).
    assert filtered["kept"] > 0 and "duplicate" in filtered["rejected"], filtered
