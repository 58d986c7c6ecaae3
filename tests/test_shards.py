"""Sharded generation: the queries stage split into shards that run as parallel jobs and are gathered
back; the result is the one-shard result, byte for byte, under either engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_project, openai_llm_params, run, scripted_server

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
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.slow
def test_shards_gather_into_the_one_shard_result(tmp_path):
    source = corpus(tmp_path / "corpus.jsonl")
    runs = {
        "one shard, snakemake": ([0], ["snakemake", "--cores", "2", "--until", "queries"]),
        "three shards, snakemake": ([0, 1, 2], ["snakemake", "--cores", "3", "--until", "queries"]),
        "three shards, dvc": ([0, 1, 2], ["dvc", "repro", "queries"]),
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
                "queries": {"candidates": 2},
                "llm": openai_llm_params(url, temperature=0.7),
            }
            project = make_project(folder, params, folder / "cache")
            run(command, project)
            results[name] = project / "results"
            shard_files = sorted(p.name for p in (results[name] / "shards" / "queries").iterdir())
            assert shard_files == sorted(f"{s}.{ext}" for s in shards for ext in ("json", "parquet"))
    reference = results["one shard, snakemake"]
    for name in ("three shards, snakemake", "three shards, dvc"):
        assert (results[name] / "queries.parquet").read_bytes() == (
            reference / "queries.parquet"
        ).read_bytes()
        # Retries are how the run went, not what it wrote: three shards at once may meet a busy server.
        stats = json.loads((results[name] / "stats" / "queries.json").read_text())
        expected = json.loads((reference / "stats" / "queries.json").read_text())
        assert {k: v for k, v in stats.items() if k != "retries"} == {
            k: v for k, v in expected.items() if k != "retries"
        }
    assert json.loads((reference / "stats" / "queries.json").read_text())["written"] == 60
