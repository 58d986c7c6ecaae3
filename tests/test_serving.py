"""vLLM serving: the recipe's params edit and command line, and the client side against a local
OpenAI-compatible server that follows the requested JSON schema (as vLLM's guided decoding does)."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import yaml
from conftest import ROOT, copy_project, jsonl, openai_llm_params, run_stage, scripted_server, scripted_stats

from synthembed.params import validate_params
from synthembed.serving import served_llm_params, set_group_values


def test_the_recipe_rewrites_only_the_llm_group_and_keeps_comments():
    text = (ROOT / "params.yaml").read_text()
    llm = served_llm_params("qwen3-32b", "http://gpu01:8000/v1", qwen3=True)
    edited = set_group_values(text, "llm", llm)
    before, after = yaml.safe_load(text), validate_params(yaml.safe_load(edited))
    assert after["llm"] == before["llm"] | llm
    assert {k: v for k, v in after.items() if k != "llm"} == {k: v for k, v in before.items() if k != "llm"}
    comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    assert [line.split("#", 1)[1] for line in edited.splitlines() if "#" in line] == comments


def test_the_recipe_asks_for_whole_json_answers_and_qwen3s_non_thinking_sampling():
    qwen3 = served_llm_params("qwen3-32b", "http://gpu01:8000/v1", qwen3=True)
    other = served_llm_params("llama", "http://gpu01:8000/v1", qwen3=False)
    for llm in (qwen3, other):  # JSON answers run over lines and past 32 tokens
        assert (llm["stop"], llm["max_new_tokens"], llm["response_format"]) == ([], 256, "json_schema")
    # Qwen3's model card, non-thinking mode: temperature 0.7, top_p 0.8, top_k 20 (greedy would ignore them)
    assert (qwen3["temperature"], qwen3["top_p"], qwen3["extra_body"]["top_k"]) == (0.7, 0.8, 20)
    assert qwen3["extra_body"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "temperature" not in other and other["extra_body"] == {}


def test_serve_script_dry_run_names_the_server_command(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    script = [sys.executable, "scripts/serve_vllm.py", "--model", "Qwen/Qwen3-32B", "--params", str(params)]
    result = subprocess.run(
        [*script, "--tensor-parallel-size", "4", "--address", "gpu01", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "server: vllm serve Qwen/Qwen3-32B --served-model-name qwen3-32b" in result.stderr
    assert (
        "--tensor-parallel-size 4" in result.stderr and "'base_url': 'http://gpu01:8000/v1'" in result.stderr
    )
    assert params.read_text() == (ROOT / "params.yaml").read_text()  # a dry run changes nothing


def test_configs_and_queries_ask_the_server_for_schema_guided_json(tmp_path):
    docs = [
        {"_id": f"d{i}", "text": f"Notes number {i} on measuring protein stability in buffers."}
        for i in range(6)
    ]
    (tmp_path / "c.jsonl").write_bytes(jsonl(*docs))
    with scripted_server({}, tmp_path) as url:
        llm = openai_llm_params(url) | served_llm_params("served", url, qwen3=True)
        (tmp_path / "project").mkdir()
        project = copy_project(
            tmp_path / "project",
            {
                "docs": {"source": "jsonl", "path": str(tmp_path / "c.jsonl"), "max_docs": None},
                "configs": {"n_docs": 6, "policy": "llm", "task_types": {"retrieval": 1.0}},
                "queries": {"prompt_style": "report"},
                "llm": llm,
            },
            tmp_path / "cache",
        )
        for stage in ("docs", "configs_shard", "configs", "queries_shard", "queries"):
            result = run_stage(project, stage)
            assert result.returncode == 0, result.stderr[-3000:]
        seen = scripted_stats(url)
    configs = pl.read_parquet(project / "results" / "configs.parquet")
    # Every answer followed the schema: the first candidate, the first question type and difficulty.
    assert configs["config_source"].to_list() == ["llm"] * 6
    assert configs["persona_rank"].to_list() == [1] * 6
    assert set(configs["question_type"]) == {
        next(iter(yaml.safe_load((project / "params.yaml").read_text())["configs"]["question_types"]))
    }
    queries = pl.read_parquet(project / "results" / "queries.parquet")
    assert queries["parse_error"].null_count() == 6 and queries["query"].null_count() == 0
    assert seen["response_formats"] == {"json_schema": 12}
