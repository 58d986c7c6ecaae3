import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import ROOT, cached_llm_calls, default_params, katan_server, openai_llm_params, served_requests

from synthembed.answers import TASK_FIELDS, parse_answer
from synthembed.configs import sampled_configs
from synthembed.corpus import passage
from synthembed.doc2query import doc2query_messages, load_doc2query_prompt
from synthembed.filtering import content_reason, echoes, word_ngrams
from synthembed.generation import doc2query_llm_params, generate_queries, source_opening
from synthembed.io import InputError
from synthembed.params import SCHEMA_PATH
from synthembed.prompts import (
    TASK_TEMPLATES,
    echo_text,
    load_prompt,
    load_task_prompts,
    prompt_text,
    row_fields,
    task_messages,
    truncate,
)
from synthembed.structural import PAIR_SCHEMA

PROMPTS = {style: ROOT / "prompts" / f"queries_{style}.yaml" for style in ("few_shot", "report")}
CFG = default_params()["configs"] | {"languages": {"en": 0.5, "de": 0.5}}
QUERIES_CFG = {"doc_chars": 200, "source_chars": 40, "code_negatives": True, "candidates": 1}


def config_rows(n: int, domain: str = "code") -> list[dict]:
    docs = [
        {"doc_id": f"d{i:03d}", "domain": domain, "lang": "en", "text": f"def f{i}(): return {i}"}
        for i in range(n)
    ]
    candidates = [
        [{"name": f"p{j}", "description": f"does {j}", "style": f"style {j}"} for j in range(5)]
    ] * n
    return sampled_configs(docs, candidates, 5, CFG, {"code": ["return"]}, seed=3)


@pytest.mark.parametrize("style", ["few_shot", "report"])
def test_every_template_renders_every_control(style):
    prompt = load_task_prompts(PROMPTS[style])
    row = config_rows(20)[0] | {
        "question_type": "yes_or_no",
        "difficulty": "phd",
        "language": "de",
        "length_words": 7,
        "domain_terms": ["socket"],
    }
    retrieval = (row["persona"], row["style"], "phd", "German", "7", "socket")
    shown_by_template = {
        "retrieval": (*retrieval, prompt["question_types"]["yes_or_no"]),
        "retrieval_code": (*retrieval, prompt["question_types"]["yes_or_no"]),
        "sts": (row["style"], "German", "7", "socket"),
        "classification": ("German", "socket"),
        "bitext": ("German",),
        "code_negative": (),
    }
    assert sorted(shown_by_template) == sorted(TASK_TEMPLATES)
    for template, controls in shown_by_template.items():
        messages = task_messages(prompt, template, row_fields(prompt, row, "THE DOCUMENT"))
        request = messages[-1]["content"]
        assert messages[0]["role"] == "system" and "THE DOCUMENT" in request
        for shown in controls:
            assert shown in request, (template, shown)
        examples = (len(messages) - 2) // 2
        assert examples == (3 if style == "few_shot" else 0)


@pytest.mark.parametrize("style", ["few_shot", "report"])
def test_prompt_files_describe_every_question_type_the_params_accept(style):
    configs = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["configs"]["properties"]
    accepted = configs["question_types"]["allOf"][1]["propertyNames"]["enum"]
    described = load_task_prompts(PROMPTS[style])["question_types"]
    assert sorted(described) == sorted(accepted)


@pytest.mark.parametrize(
    ("text", "max_chars", "shown"),
    [
        ("alpha beta gamma", 12, "alpha beta"),
        ("alpha beta\ngamma delta", 14, "alpha beta"),  # a newline is whitespace too
        ("alpha\tbeta gamma", 9, "alpha"),
        (" alphabet soup", 6, " alpha"),  # only whitespace before the cut: the word is cut, not dropped
        ("alphabet soup", 5, "alpha"),
        ("alpha beta gamma", 10, "alpha beta"),  # the limit falls just after a word: it is kept whole
        ("short", 10, "short"),
    ],
)
def test_truncate_cuts_at_the_last_whitespace_and_never_to_nothing(text, max_chars, shown):
    assert truncate(text, max_chars) == shown


def test_prompt_file_with_a_broken_example_fails_at_load(tmp_path):
    broken = yaml.safe_load(PROMPTS["few_shot"].read_text())
    del broken["tasks"]["sts"]["examples"][1]["language"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ValueError, match=r"p.yaml: tasks.sts example 2 lacks 'language'"):
        load_task_prompts(path)


def test_prompt_file_with_a_broken_template_or_an_undescribed_question_type_fails_at_load(tmp_path):
    path = tmp_path / "p.yaml"
    broken = yaml.safe_load(PROMPTS["report"].read_text())  # no worked examples to catch a typo
    broken["tasks"]["bitext"]["template"] += " in {langauge}"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(
        ValueError, match=r"p.yaml: tasks.bitext template: unknown or broken placeholder 'langauge'"
    ):
        load_task_prompts(path)
    untemplated = yaml.safe_load(PROMPTS["report"].read_text())
    del untemplated["tasks"]["sts"]["template"]
    path.write_text(yaml.safe_dump(untemplated))
    with pytest.raises(ValueError, match=r"p.yaml: tasks.sts needs a 'template' text"):
        load_task_prompts(path)
    fine = yaml.safe_load(PROMPTS["report"].read_text())
    del fine["question_types"]["claim"]
    path.write_text(yaml.safe_dump(fine))
    assert "claim" not in load_task_prompts(path, ["keywords", "summary"])["question_types"]
    with pytest.raises(ValueError, match=r"p.yaml: question_types describes no claim, which the run draws"):
        load_task_prompts(path, ["keywords", "claim"])


@pytest.mark.parametrize("loader", [load_task_prompts, load_prompt, load_doc2query_prompt])
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", r"p.yaml: expected a mapping of entries, got nothing"),
        ("system: [a\n", r"p.yaml:2: not valid YAML"),
    ],
)
def test_an_empty_or_malformed_prompt_file_fails_naming_file_and_line(tmp_path, loader, text, error):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=error):
        loader(path)


@pytest.mark.parametrize(
    ("raw", "template", "answer_format", "error"),
    [
        ("no json here", "retrieval", "json", "no JSON object"),
        ('{"Query": ""}', "retrieval", "json", "schema"),
        ('{"Query": "q", "Extra": "x"}', "retrieval", "json", "schema"),
        ('{"Label": "only a label"}', "classification", "json", "schema"),
        ("a label without description", "classification", "line", "expected Label : Label_Description"),
        ("\n\n", "sts", "line", "empty answer"),
        ('{"Query": "   "}', "retrieval", "json", "empty answer"),
        ('{"Negative": "\\n"}', "code_negative", "json", "empty answer"),
        ('{"Label": "csv", "Label_Description": " "}', "classification", "json", "empty answer"),
    ],
)
def test_bad_answers_give_reasons(raw, template, answer_format, error):
    with pytest.raises(ValueError, match=error):
        parse_answer(raw, template, answer_format)


@pytest.mark.parametrize(
    ("raw", "template", "fields"),
    [
        ("def greet(name): return 'hi'", "code_negative", {"Negative": "def greet(name): return 'hi'"}),
        ('"with" statement in python', "retrieval", {"Query": '"with" statement in python'}),
        ('Query: "parse json in python"', "retrieval", {"Query": "parse json in python"}),
        ("\u201csort a dict by value\u201d", "retrieval", {"Query": "sort a dict by value"}),
        ("'hi' he said", "sts", {"Paraphrase": "'hi' he said"}),
        (
            "http://x.org - the project's site",
            "classification",
            {"Label": "http://x.org", "Label_Description": "the project's site"},
        ),
        (
            "12:30 meetings: agenda slots",
            "classification",
            {"Label": "12:30 meetings", "Label_Description": "agenda slots"},
        ),
    ],
)
def test_one_line_answers_lose_only_enclosing_quotes_and_split_at_a_real_separator(raw, template, fields):
    assert parse_answer(raw, template, "line") == fields


def test_json_answers_are_found_in_prose_and_fences():
    raw = 'Here you go:\n```json\n{"Translation": "Hallo {Welt}"}\n```'
    assert parse_answer(raw, "bitext", "json") == {"Translation": "Hallo {Welt}"}


class TemplateLLM:
    """Answers each request with a fixed answer per template; counts requests."""

    def __init__(self, answers: dict[str, str | None], model_name: str = "prompted-llm"):
        self.answers = answers
        self.model_name = model_name
        self.requests: dict[str, int] = {}

    def generate(self, prompts, seed, desc="", schema=None, samples=1):
        template = desc.removeprefix("queries: ")
        self.requests[template] = self.requests.get(template, 0) + len(prompts) * samples
        self.seen = getattr(self, "seen", []) + [
            (template, seed + s, p) for s in range(samples) for p in prompts
        ]
        if template in ("retrieval", "retrieval_code", "code_negative"):
            assert schema is None or schema["required"] == list(TASK_FIELDS[template])
        return [self.answers[template]] * len(prompts) * samples

    def key(self, messages, seed, schema=None):
        return f"{len(messages)}-{seed}"


ANSWERS = {
    "few_shot": {
        "retrieval_code": "Query: return a constant",
        "sts": "gives back a fixed number",
        "classification": "constant functions: functions that return a fixed value",
        "bitext": None,  # the call failed
        "code_negative": "def g(): return -1",
    },
    "report": {
        "retrieval_code": 'Sure. {"Query": "return a constant"}',
        "sts": '{"Paraphrase": "gives back a fixed number"}',
        "classification": (
            '{"Label": "constant functions", "Label_Description": "functions that return a fixed value"}'
        ),
        "bitext": None,
        "code_negative": '```json\n{"Negative": "def g(): return -1"}\n```',
    },
}


@pytest.mark.parametrize("style", ["few_shot", "report"])
def test_generated_rows_keep_controls_answers_and_reasons(style):
    rows = config_rows(20)
    llm = TemplateLLM(ANSWERS[style])
    prompt = load_task_prompts(PROMPTS[style])
    out = generate_queries(rows, [f"def f{i}(): return {i}" for i in range(20)], prompt, llm, QUERIES_CFG, 13)
    by_task = {r["task_type"]: r for r in out}
    assert by_task["retrieval"]["template"] == "retrieval_code"
    assert by_task["retrieval"]["query"] == "return a constant"
    assert by_task["retrieval"]["llm_negative"] == "def g(): return -1"
    assert by_task["sts"]["query"] == "gives back a fixed number"
    assert by_task["sts"]["llm_negative"] is None and by_task["sts"]["llm_negative_error"] is None
    assert by_task["classification"]["label"] == "constant functions"
    assert by_task["classification"]["query"] == "constant functions: functions that return a fixed value"
    assert by_task["bitext"]["query"] is None and by_task["bitext"]["parse_error"] == "llm_call_failed"
    retrieval_rows = sum(r["task_type"] == "retrieval" for r in rows)
    assert llm.requests["code_negative"] == retrieval_rows == 9
    assert [o["persona"] for o in out] == [r["persona"] for r in rows]


def test_candidates_are_sampled_with_their_own_seeds_and_negatives_asked_once():
    rows = config_rows(20)
    llm = TemplateLLM(ANSWERS["few_shot"])
    prompt = load_task_prompts(PROMPTS["few_shot"])
    out = generate_queries(rows, ["def f(): pass"] * 20, prompt, llm, QUERIES_CFG | {"candidates": 3}, 13)
    assert len(out) == 60 and [o["candidate"] for o in out] == [0] * 20 + [1] * 20 + [2] * 20
    assert {seed for template, seed, _ in llm.seen if template == "sts"} == {13, 14, 15}
    assert llm.requests["code_negative"] == 9  # once per retrieval row, not per candidate
    assert all(o["llm_negative"] == "def g(): return -1" for o in out if o["task_type"] == "retrieval")


def test_corpus_examples_replace_the_fixed_ones_in_retrieval_prompts_only():
    rows = config_rows(20)
    llm = TemplateLLM(ANSWERS["few_shot"])
    prompt = load_task_prompts(PROMPTS["few_shot"])
    examples = [[("def neighbour(): return 7", "get the lucky number of the neighbour")]] * 20
    out = generate_queries(rows, ["def f(): pass"] * 20, prompt, llm, QUERIES_CFG, 13, examples)
    retrieval = next(p for template, _, p in llm.seen if template == "retrieval_code")
    sts = next(p for template, _, p in llm.seen if template == "sts")
    # system, one worked example (user + assistant), the request
    assert [m["role"] for m in retrieval] == ["system", "user", "assistant", "user"]
    assert "def neighbour(): return 7" in retrieval[1]["content"]
    assert retrieval[2]["content"] == "get the lucky number of the neighbour"
    assert len(sts) == 2 + 2 * len(prompt["tasks"]["sts"]["examples"])  # fixed examples kept
    # the filter's prompt echo looks for the answers the row was shown, not the prompt file's
    instruction = prompt["tasks"]["retrieval_code"]["template"]
    shown = echo_text(prompt["system"], instruction, ["get the lucky number of the neighbour"])
    assert {r["echo_text"] for r in out if r["template"] == "retrieval_code"} == {shown}
    assert {r["echo_text"] for r in out if r["template"] != "retrieval_code"} == {None}
    copy = "get the lucky number of the neighbour function"
    cfg = {"repetition_check": False, "copied_min_words": None, "echo_min_words": 5}
    assert content_reason(copy, "def f(): pass", "retrieval", "en", None, set(word_ngrams(shown, 5)), cfg)
    assert not echoes(copy, set(word_ngrams(prompt_text(prompt, "retrieval_code"), 5)), 5)


def test_corpus_examples_answer_in_json_under_a_json_prompt():
    llm = TemplateLLM(ANSWERS["report"])
    examples = [[("def neighbour(): return 7", "get the lucky number")]] * 20
    prompt = load_task_prompts(PROMPTS["report"])
    out = generate_queries(config_rows(20), ["def f(): pass"] * 20, prompt, llm, QUERIES_CFG, 13, examples)
    retrieval = next(p for template, _, p in llm.seen if template == "retrieval_code")
    assert retrieval[2] == {"role": "assistant", "content": '{"Query": "get the lucky number"}'}
    assert parse_answer(retrieval[2]["content"], "retrieval_code", "json") == {
        "Query": "get the lucky number"
    }
    assert all(r["parse_error"] is None for r in out if r["template"] == "retrieval_code")


def test_sts_and_bitext_rows_of_a_markdown_part_rewrite_its_prose_not_its_files_title():
    rows = config_rows(20, domain="notes")
    page = (
        "### `http2session.close([callback])`\n\n<!-- YAML\nadded: v9.4.0\n-->\n\n"
        "Gracefully closes the session, letting streams in flight finish.\n\n* `callback` {Function}"
    )
    documents, sources = [passage("HTTP/2", page)] * 20, [source_opening("HTTP/2", page, "notes")] * 20
    llm = TemplateLLM(
        ANSWERS["few_shot"] | {"retrieval": "close a session", "bitext": "Schliesst die Sitzung"}
    )
    generate_queries(
        rows, documents, load_task_prompts(PROMPTS["few_shot"]), llm, QUERIES_CFG, 13, sources=sources
    )
    shown = {template: p[-1]["content"] for template, _, p in llm.seen}
    for template in ("sts", "bitext"):
        assert "Gracefully closes the session, letting" in shown[template], template
        assert "HTTP/2" not in shown[template] and "YAML" not in shown[template], template
    assert "HTTP/2\n### `http2session.close([callback])`" in shown["retrieval"]  # the passage, title first


def test_answer_in_the_wrong_format_is_a_reason_not_a_row():
    rows = config_rows(20)
    llm = TemplateLLM(ANSWERS["few_shot"])  # one-line answers where JSON was asked
    out = generate_queries(
        rows, ["def f(): pass"] * 20, load_task_prompts(PROMPTS["report"]), llm, QUERIES_CFG, 13
    )
    sts = next(r for r in out if r["task_type"] == "sts")
    assert sts["query"] is None and sts["parse_error"] == "unparsable: no JSON object"
    assert sts["raw_output"] == "gives back a fixed number"


def write_stage_inputs(folder: Path, n: int, base_url: str, cache_dir: Path) -> list[str]:
    """docs, configs and params of a queries run against an OpenAI-compatible server; its command."""
    rows = config_rows(n, domain="notes")
    pl.DataFrame(
        {"doc_id": [r["doc_id"] for r in rows], "title": [""] * n, "text": [f"note {i}" for i in range(n)]}
    ).write_parquet(folder / "docs.parquet")
    pl.DataFrame(rows).write_parquet(folder / "configs.parquet")
    pl.DataFrame(schema=PAIR_SCHEMA).write_parquet(folder / "structural.parquet")
    params = default_params()
    params["llm"] = openai_llm_params(base_url, concurrency=2, max_retries=0)
    params["runtime"]["cache_dir"] = str(cache_dir)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, str(ROOT / "scripts" / "queries.py"), "--params", str(folder / "params.yaml")]
    command += ["--docs", str(folder / "docs.parquet"), "--configs", str(folder / "configs.parquet")]
    command += ["--structural", str(folder / "structural.parquet"), "--doc2query", str(folder / "doc2query")]
    command += ["--doc2query-prompt", str(ROOT / "prompts" / "doc2query.yaml")]
    command += ["--few-shot-prompt", str(PROMPTS["few_shot"]), "--report-prompt", str(PROMPTS["report"])]
    command += ["--shard", "0", "--out", str(folder / "queries.parquet")]
    return [*command, "--out-stats", str(folder / "stats.json")]


def settled(read: Callable[[], int], interval_s: float, timeout_s: float = 30.0) -> int:
    """What ``read()`` returns once two reads ``interval_s`` apart agree; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = read()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        now = read()
        if now == last:
            return now
        last = now
    pytest.fail(f"still changing after {timeout_s} s")


def test_queries_stage_killed_halfway_repeats_no_finished_call(tmp_path):
    n = 60
    with katan_server("-b", "echo", "--latency-ms", "100", "--max-concurrent", "2") as url:
        command = write_stage_inputs(tmp_path, n, url, tmp_path / "cache")
        cache = tmp_path / "cache" / "llm.sqlite"
        stage = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while cached_llm_calls(cache) < n // 2:
            assert stage.poll() is None, "the stage ended before it was killed"
            assert time.monotonic() < deadline, f"under {n // 2} calls stored after 120 s"
            time.sleep(0.05)
        os.kill(stage.pid, signal.SIGKILL)
        stage.wait()
        # the server still answers the requests that were in flight: each takes 100 ms
        answered_before_kill = settled(lambda: served_requests(url), interval_s=0.3)
        finished = cached_llm_calls(cache)
        assert not (tmp_path / "queries.parquet").exists()
        assert n // 2 <= finished < n
        # At most the calls in flight were answered but not stored: the concurrency limit.
        assert answered_before_kill - finished <= 2

        subprocess.run(command, check=True, capture_output=True)
        rerun_requests = served_requests(url) - answered_before_kill
        stats = yaml.safe_load((tmp_path / "stats.json").read_text())
        assert rerun_requests == n - finished == stats["llm_calls"]
        assert stats["cache_hits"] == finished
        assert pl.read_parquet(tmp_path / "queries.parquet")["raw_output"].null_count() == 0
        print(
            f"\nkill/resume: {n} calls; {finished} stored when killed ({answered_before_kill} answered),"
            f" rerun made {rerun_requests} calls and reused {stats['cache_hits']}"
        )


@pytest.mark.slow
def test_queries_stage_through_a_served_real_model(tmp_path, llm_cache_dir):
    """SmolLM2 behind llm-katan's OpenAI-compatible server: the stage's requests, answers and token
    counts come from a real model over HTTP."""
    from synthembed.models import causal_lm_path

    model_dir = causal_lm_path("embedded:smollm2-135m-instruct", llm_cache_dir)
    options = ("-b", "transformers", "--device", "cpu", "--no-quantize", "--max-concurrent", "2")
    with katan_server(*options, model=model_dir, startup_s=180) as url:
        command = write_stage_inputs(tmp_path, 6, url, tmp_path / "cache")
        subprocess.run(command, check=True, capture_output=True)
        served = served_requests(url)
    queries = pl.read_parquet(tmp_path / "queries.parquet")
    stats = yaml.safe_load((tmp_path / "stats.json").read_text())
    assert served == stats["llm_calls"] == 6 and stats["failures"] == {}
    assert stats["tokens_in"] > 6 * 200 and stats["tokens_out"] > 6  # the few-shot prompts are long
    assert queries["raw_output"].null_count() == 0 and queries["raw_output"].str.len_chars().min() > 0
    answered = queries.filter(pl.col("parse_error").is_null())
    assert answered.height >= 3 and answered["query"].str.len_chars().min() > 0


def test_doc2query_model_answers_the_retrieval_rows_under_its_own_prompt():
    rows = config_rows(20)
    llm = TemplateLLM(ANSWERS["report"])
    doc2query_llm = TemplateLLM({"retrieval_code": "return a fixed number"}, "doc2query:0123")
    prompt = load_task_prompts(PROMPTS["report"])
    doc2query_prompt = load_doc2query_prompt(ROOT / "prompts" / "doc2query.yaml")
    texts = [f"def f{i}(): return {i}" for i in range(20)]
    documents = [f"module.f{i}\n{text}" for i, text in enumerate(texts)]  # passages: title, then text
    doc2query = (doc2query_prompt, doc2query_llm, 700, texts)
    out = generate_queries(rows, documents, prompt, llm, QUERIES_CFG, 13, doc2query=doc2query)
    retrieval = [o for o in out if o["task_type"] == "retrieval"]
    assert len(retrieval) == 9 and {o["query"] for o in retrieval} == {"return a fixed number"}
    assert all(o["parse_error"] is None for o in retrieval)  # one line, not the report's JSON
    assert doc2query_llm.requests == {"retrieval_code": 9}
    assert "retrieval_code" not in llm.requests and llm.requests["code_negative"] == 9
    first = next(o for o in out if o["task_type"] == "retrieval")
    # it sees the text without the title, as its structural training pairs showed it
    text = texts[[r["doc_id"] for r in rows].index(first["doc_id"])]
    assert doc2query_llm.seen[0][2] == doc2query_messages(doc2query_prompt, "retrieval_code", text, 700)
    instruction = doc2query_prompt["retrieval_code"]
    assert {o["echo_text"] for o in retrieval} == {echo_text(doc2query_prompt["system"], instruction, [])}
    assert next(o for o in out if o["task_type"] == "sts")["query"] == "gives back a fixed number"
    # each row names the model that wrote its query
    assert {o["model"] for o in retrieval} == {"doc2query:0123"}
    assert {o["model"] for o in out if o["task_type"] != "retrieval"} == {"prompted-llm"}


def test_the_local_doc2query_model_keeps_the_llms_sampling_and_costs_nothing():
    llm_cfg = {
        "backend": "openai",
        "model": "gpt-x",
        "batch_size": 64,
        "max_new_tokens": 32,
        "temperature": 0.7,
        "stop": ["\n"],
        "price_per_million_tokens": {"input": 0.1, "output": 0.4},
    }
    assert doc2query_llm_params(llm_cfg, "results/doc2query") == {
        "backend": "transformers",
        "model": "results/doc2query",
        "batch_size": 64,
        "max_new_tokens": 32,
        "temperature": 0.7,
        "stop": ["\n"],
        "price_per_million_tokens": None,
    }
