from collections import Counter

import numpy as np
import polars as pl
import pytest
from conftest import ROOT, default_params

from synthembed.configs import (
    achieved_shares,
    choose_with_llm,
    config_answer_schema,
    control_targets,
    glossary_matches,
    load_glossary,
    load_personas,
    parse_config_answer,
    sampled_configs,
    stratified_labels,
)
from synthembed.io import InputError
from synthembed.params import validate_params
from synthembed.prompts import load_prompt
from synthembed.shards import interleave

CFG = {
    "task_types": {"retrieval": 0.45, "sts": 0.25, "classification": 0.20, "bitext": 0.10},
    "question_types": {
        "keywords": 0.2,
        "acquire_knowledge": 0.3,
        "summary": 0.2,
        "yes_or_no": 0.1,
        "background": 0.2,
    },
    "difficulties": {"high_school": 0.3, "university": 0.5, "phd": 0.2},
    "languages": {"en": 0.75, "de": 0.25},
    "bitext_languages": {"fr": 0.5, "es": 0.5},
    "length_words": [4, 6],
    "glossary_terms": 2,
    "llm_retries": 1,
}
GLOSSARY = {"code": ["socket", "timeout", "thread"]}


def candidates(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"name": f"p{i}-{j}", "description": f"persona {j}", "style": f"style {j}"} for j in range(5)]
        for i in range(n)
    ]


def documents(n: int) -> list[dict[str, str]]:
    texts = ["open a socket with a timeout", "spawn a thread", "plain text"]
    return [
        {"doc_id": f"d{i:04d}", "domain": "code" if i % 2 else "notes", "lang": "en", "text": texts[i % 3]}
        for i in range(n)
    ]


def test_persona_library_has_fifty_described_personas_with_styles_across_domains():
    personas = load_personas(ROOT / "prompts" / "personas.yaml")
    assert len(personas) >= 50
    assert all(p["description"].strip() and p["domain"] and p["style"] for p in personas)
    assert len({p["domain"] for p in personas}) >= 8
    assert len({p["style"] for p in personas}) >= 15


def test_persona_without_style_is_rejected_naming_file_and_entry(tmp_path):
    path = tmp_path / "personas.yaml"
    path.write_text(
        "personas:\n"
        "  - {name: a, domain: d, description: x, style: s}\n"
        "  - {name: b, domain: d, description: y}\n"
    )
    with pytest.raises(ValueError, match=r"personas.yaml: persona 2 lacks style"):
        load_personas(path)


def test_glossary_terms_are_whole_words_of_the_document_in_glossary_order(tmp_path):
    assert glossary_matches("Set the TIMEOUT of a socket", GLOSSARY["code"], 5) == ["socket", "timeout"]
    assert glossary_matches("Set the TIMEOUT of a socket", GLOSSARY["code"], 1) == ["socket"]
    assert glossary_matches("sockets and threading", GLOSSARY["code"], 5) == []
    bad = tmp_path / "glossary.yaml"
    bad.write_text("code: socket\n")
    with pytest.raises(ValueError, match=r"glossary\.yaml: a glossary maps each domain to a list of terms"):
        load_glossary(bad)
    good = tmp_path / "good.yaml"
    good.write_text("code: [socket, timeout]\nprose: []\n")
    assert load_glossary(good) == {"code": ["socket", "timeout"], "prose": []}
    # the terms above are the shipped glossary's own
    assert set(GLOSSARY["code"]) <= set(load_glossary(ROOT / "prompts" / "glossary.yaml")["code"])


@pytest.mark.parametrize("n", [7, 100, 1001])
def test_stratified_counts_are_within_one_of_target(n):
    labels = stratified_labels(CFG["question_types"], n, np.random.default_rng(0))
    counts = Counter(labels)
    for label, share in CFG["question_types"].items():
        assert abs(counts[label] - share * n) < 1
    assert len(labels) == n


def test_sampled_configs_are_seeded_and_set_each_control_where_its_prompt_uses_it():
    rows = sampled_configs(documents(40), candidates(40), 5, CFG, GLOSSARY, seed=5)
    assert rows == sampled_configs(documents(40), candidates(40), 5, CFG, GLOSSARY, seed=5)
    assert rows != sampled_configs(documents(40), candidates(40), 5, CFG, GLOSSARY, seed=6)
    assert Counter(r["task_type"] for r in rows) == {
        "retrieval": 18,
        "sts": 10,
        "classification": 8,
        "bitext": 4,
    }
    for row in rows:
        assert row["persona"] == row["persona_candidates"][row["persona_rank"] - 1]
        assert row["style"] == f"style {row['persona_rank'] - 1}"
        assert (
            (row["question_type"] is not None)
            == (row["difficulty"] is not None)
            == (row["task_type"] == "retrieval")
        )
        has_length = row["task_type"] in ("retrieval", "sts")
        assert (row["length_words"] is not None) == has_length and (
            not has_length or 4 <= row["length_words"] <= 6
        )
        allowed = CFG["bitext_languages"] if row["task_type"] == "bitext" else CFG["languages"]
        assert row["language"] in allowed
        assert row["cross_lingual"] == (row["language"] != "en") and row["doc_language"] == "en"
        if row["domain"] == "code":
            text = documents(40)[int(row["doc_id"][1:])]["text"]
            assert row["domain_terms"] == [t for t in GLOSSARY["code"] if t in text.split()][:2]
        else:
            assert row["domain_terms"] == []
        assert row["config_source"] == "sampled"


def test_thousand_documents_meet_every_share_within_three_points():
    cfg = CFG | {"languages": {"en": 0.7, "de": 0.1, "fr": 0.1, "zh": 0.1}}
    rows = sampled_configs(documents(1000), candidates(1000), 5, cfg, GLOSSARY, seed=13)
    table = achieved_shares(rows, control_targets(cfg, 5))
    assert set(table) == {
        "task_type",
        "question_type",
        "difficulty",
        "language",
        "bitext_language",
        "persona_rank",
    }
    for control, labels in table.items():
        for label, share in labels.items():
            assert abs(share["achieved"] - share["target"]) <= 3, (control, label, share)
    assert table["persona_rank"]["1"]["target"] == 20.0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("no json here", "no JSON object"),
        ('{"Character": "p", "Question_Type": "summary"', "no JSON object"),
        ('{"Character": "stranger", "Question_Type": "summary", "Difficulty": "phd"}', "schema"),
        ('{"Character": "p", "Question_Type": "summary"}', "schema"),
        ("{'Character': 'p'}", "no JSON object"),
    ],
)
def test_bad_answers_are_rejected(answer, error):
    with pytest.raises(ValueError, match=error):
        parse_config_answer(answer, config_answer_schema(["p"], ["summary"], ["phd"]))


class ScriptedLLM:
    """Answers from a list, in order of calls: the control flow under test is retry and fallback."""

    def __init__(self, answers: list[list[str]]):
        self.answers = answers
        self.seeds: list[int] = []
        self.requests: list[tuple[list, dict | None]] = []

    def generate(self, prompts, seed, desc="", schema=None):
        self.seeds.append(seed)
        self.requests.append((prompts, schema))
        answers = self.answers.pop(0)
        assert len(answers) == len(prompts)
        return answers


def test_llm_policy_retries_then_falls_back_and_says_so():
    cfg = CFG | {"task_types": {"retrieval": 1.0}}
    rows = sampled_configs(documents(3), candidates(3), 5, cfg, GLOSSARY, seed=1)
    good = '{"Character": "%s", "Question_Type": "summary", "Difficulty": "phd"}'
    llm = ScriptedLLM(
        [
            [good % "p0-3", "garbage", '{"Character": "p2-1", "Question_Type": "nope", "Difficulty": "phd"}'],
            [good % "p1-0", "still garbage"],
        ]
    )
    prompt = load_prompt(ROOT / "prompts" / "configs_llm.yaml")
    failures = choose_with_llm(
        rows, candidates(3), ["doc a", "doc b", "doc c"], llm, prompt, cfg, 500, seed=9, temperature=0.7
    )
    assert [r["config_source"] for r in rows] == ["llm", "llm", "fallback"]
    assert rows[0]["persona"] == "p0-3" and rows[0]["persona_rank"] == 4 and rows[0]["style"] == "style 3"
    assert rows[0]["question_type"] == "summary"
    assert rows[1]["persona"] == "p1-0"
    assert llm.seeds == [9, 10]
    assert failures == {"no JSON object": 2, "schema": 1}


def test_greedy_llm_policy_asks_once_and_falls_back_without_retries():
    cfg = CFG | {"task_types": {"retrieval": 1.0}, "llm_retries": 2}
    rows = sampled_configs(documents(2), candidates(2), 5, cfg, GLOSSARY, seed=1)
    llm = ScriptedLLM([['{"Character": "p0-1", "Question_Type": "summary", "Difficulty": "phd"}', "garbage"]])
    prompt = load_prompt(ROOT / "prompts" / "configs_llm.yaml")
    failures = choose_with_llm(rows, candidates(2), ["doc a", "doc b"], llm, prompt, cfg, 500, 9, 0.0)
    assert llm.seeds == [9]  # another seed would give the same greedy answer
    assert [r["config_source"] for r in rows] == ["llm", "fallback"]
    assert failures == {"no JSON object": 1}


def test_llm_policy_offers_only_labels_with_a_share():
    cfg = CFG | {"task_types": {"retrieval": 1.0}, "question_types": {"summary": 0.0, "keywords": 1.0}}
    rows = sampled_configs(documents(2), candidates(2), 5, cfg, GLOSSARY, seed=1)
    answer = '{"Character": "p%d-0", "Question_Type": "%s", "Difficulty": "phd"}'
    llm = ScriptedLLM([[answer % (0, "summary"), answer % (1, "keywords")]])
    prompt = load_prompt(ROOT / "prompts" / "configs_llm.yaml")
    failures = choose_with_llm(rows, candidates(2), ["doc a", "doc b"], llm, prompt, cfg, 500, 9, 0.0)
    messages, schema = llm.requests[0]
    assert schema["properties"]["Question_Type"]["enum"] == ["keywords"]
    assert all("summary" not in m["content"] for m in messages[0])
    assert [r["config_source"] for r in rows] == ["fallback", "llm"]
    assert failures == {"schema": 1} and rows[0]["question_type"] == "keywords"


def test_config_schema_meets_strict_structured_outputs():
    """OpenAI's strict mode: every object closed and all its properties required, every enum typed."""
    schema = config_answer_schema(["p0", "p1"], ["summary"], ["phd", "university"])
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert schema["properties"] == {
        "Character": {"type": "string", "enum": ["p0", "p1"]},
        "Question_Type": {"type": "string", "enum": ["summary"]},
        "Difficulty": {"type": "string", "enum": ["phd", "university"]},
    }
    with pytest.raises(ValueError, match="schema"):
        answer = '{"Character": "p0", "Question_Type": "summary", "Difficulty": "phd", "Why": "x"}'
        parse_config_answer(answer, schema)


def test_shards_take_their_rows_from_the_plan_of_all_documents():
    whole = sampled_configs(documents(11), candidates(11), 5, CFG, GLOSSARY, seed=4)
    parts = [
        sampled_configs(
            documents(11)[shard::3], candidates(11)[shard::3], 5, CFG, GLOSSARY, 4, 11, [0, 1, 2], shard
        )
        for shard in (0, 1, 2)
    ]
    assert interleave([pl.DataFrame(part) for part in parts]).to_dicts() == whole
    empty = sampled_configs([], [], 5, CFG, GLOSSARY, 4, total=1, shard_ids=[0, 1], shard=1)
    assert empty == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"languages": {"en": 0}}, r"p\.yaml: configs\.languages: the shares \{'en': 0\} sum to zero"),
        (
            {"task_types": {"retrieval": 0, "sts": 0.0}},
            r"p\.yaml: configs\.task_types: the shares .* sum to zero",
        ),
    ],
)
def test_zero_shares_are_rejected_naming_the_params_key(changes, error):
    params = default_params()
    params["configs"] |= changes
    with pytest.raises(InputError, match=error):
        validate_params(params, "p.yaml")


@pytest.mark.parametrize(
    ("group", "changes", "error"),
    [
        ("configs", {"length_words": [12, 4]}, r"configs\.length_words: \[12, 4\]: the shortest is longer"),
        (
            "balance",
            {"quotas": {"domain": {"code": 0}}},
            r"balance\.quotas\.domain: the shares .* sum to zero",
        ),
        (
            "balance",
            {"quotas": {"questin_type": {"claim": 1.0}}},
            r"balance\.quotas: 'questin_type' is not one of",
        ),
        (
            "negatives",
            {"num_negatives": 3, "range_min": 10, "range_max": 12},
            r"negatives\.num_negatives: 3 negatives cannot come from ranks \[10, 12\)",
        ),
    ],
)
def test_settings_that_cannot_work_are_rejected_naming_the_params_key(group, changes, error):
    params = default_params()
    params[group] |= changes
    with pytest.raises(InputError, match=r"p\.yaml: " + error):
        validate_params(params, "p.yaml")


def test_a_drawn_label_without_a_balance_quota_is_rejected_naming_the_params_key():
    params = default_params()
    params["configs"]["question_types"] = {"claim": 1.0}
    error = (
        r"p\.yaml: balance\.quotas\.question_type: no quota for 'claim', which configs\.question_types draws"
    )
    with pytest.raises(InputError, match=error):
        validate_params(params, "p.yaml")
    params["balance"]["quotas"]["question_type"] = {"claim": 1.0}
    assert validate_params(params, "p.yaml")["configs"]["question_types"] == {"claim": 1.0}


EMPTY_LIBRARY = r"personas.yaml: 'personas' must be a non-empty list"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("personas: []\n", EMPTY_LIBRARY),
        ("personas:\n", EMPTY_LIBRARY),
        ("other: 1\n", EMPTY_LIBRARY),
        ("", r"personas.yaml: expected a mapping of entries, got nothing"),
        ("personas:\n  - just a name\n", r"personas.yaml: persona 1 must be a mapping of name, "),
        ("personas:\n  - name: [x\n", r"personas.yaml:3: not valid YAML"),
    ],
)
def test_a_broken_persona_library_is_rejected_naming_the_file(tmp_path, text, error):
    path = tmp_path / "personas.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_personas(path)
