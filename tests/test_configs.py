from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthembed.configs import (
    answer_schema,
    choose_with_llm,
    load_personas,
    parse_config_answer,
    sampled_configs,
    stratified_labels,
)
from synthembed.prompts import load_prompt

ROOT = Path(__file__).resolve().parents[1]
CFG = {
    "question_types": {
        "keywords": 0.2,
        "acquire_knowledge": 0.3,
        "summary": 0.2,
        "yes_or_no": 0.1,
        "background": 0.2,
    },
    "difficulties": {"high_school": 0.3, "university": 0.5, "phd": 0.2},
    "languages": {"en": 0.75, "de": 0.25},
    "length_words": [4, 6],
    "llm_retries": 1,
}


def candidates(n: int) -> list[list[dict[str, str]]]:
    return [[{"name": f"p{i}-{j}", "description": f"persona {j}"} for j in range(5)] for i in range(n)]


def test_persona_library_has_fifty_described_personas_across_domains():
    personas = load_personas(ROOT / "prompts" / "personas.yaml")
    assert len(personas) >= 50
    assert all(p["description"].strip() and p["domain"] for p in personas)
    assert len({p["domain"] for p in personas}) >= 8


@pytest.mark.parametrize("n", [7, 100, 1001])
def test_stratified_counts_are_within_one_of_target(n):
    labels = stratified_labels(CFG["question_types"], n, np.random.default_rng(0))
    counts = Counter(labels)
    for label, share in CFG["question_types"].items():
        assert abs(counts[label] - share * n) < 1
    assert len(labels) == n


def test_sampled_configs_are_seeded_and_choose_among_candidates():
    ids = [f"d{i}" for i in range(40)]
    rows = sampled_configs(ids, candidates(40), CFG, seed=5)
    assert rows == sampled_configs(ids, candidates(40), CFG, seed=5)
    assert rows != sampled_configs(ids, candidates(40), CFG, seed=6)
    assert Counter(r["language"] for r in rows) == {"en": 30, "de": 10}
    for row in rows:
        assert row["persona"] in row["persona_candidates"]
        assert 4 <= row["length_words"] <= 6
        assert row["config_source"] == "sampled" and row["task_type"] == "retrieval"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("no json here", "no JSON object"),
        ('{"Character": "p", "Question_Type": "summary"', "no JSON object"),
        ('{"Character": "stranger", "Question_Type": "summary", "Difficulty": "phd"}', "schema"),
        ('{"Character": "p", "Question_Type": "summary"}', "schema"),
        ("{'Character': 'p'}", "invalid JSON"),
    ],
)
def test_bad_answers_are_rejected(answer, error):
    with pytest.raises(ValueError, match=error):
        parse_config_answer(answer, answer_schema(["p"], ["summary"], ["phd"]))


class ScriptedLLM:
    """Answers from a list, in order of calls: the control flow under test is retry and fallback."""

    def __init__(self, answers: list[list[str]]):
        self.answers = answers
        self.seeds: list[int] = []

    def generate(self, prompts, seed, desc=""):
        self.seeds.append(seed)
        answers = self.answers.pop(0)
        assert len(answers) == len(prompts)
        return answers


def test_llm_policy_retries_then_falls_back_and_says_so():
    rows = sampled_configs(["a", "b", "c"], candidates(3), CFG, seed=1)
    good = '{"Character": "%s", "Question_Type": "summary", "Difficulty": "phd"}'
    llm = ScriptedLLM(
        [
            [good % "p0-3", "garbage", '{"Character": "p2-1", "Question_Type": "nope", "Difficulty": "phd"}'],
            [good % "p1-0", "still garbage"],
        ]
    )
    prompt = load_prompt(ROOT / "prompts" / "configs_llm.yaml")
    failures = choose_with_llm(
        rows, candidates(3), ["doc a", "doc b", "doc c"], llm, prompt, CFG, 500, seed=9
    )
    assert [r["config_source"] for r in rows] == ["llm", "llm", "fallback"]
    assert rows[0]["persona"] == "p0-3" and rows[0]["question_type"] == "summary"
    assert rows[1]["persona"] == "p1-0"
    assert llm.seeds == [9, 10]
    assert failures == {"no JSON object in the answer": 2, "schema": 1}
