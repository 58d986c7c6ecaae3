"""Per-document generation configurations: persona, question type, difficulty, language, length."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from synthembed.balance import quota_targets

logger = logging.getLogger(__name__)

JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def load_personas(path: str | Path) -> list[dict[str, str]]:
    """The persona library: a list of {name, domain, description}; names must be unique."""
    personas = yaml.safe_load(Path(path).read_text())["personas"]
    names = [p["name"] for p in personas]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: persona names must be unique")
    return personas


def persona_text(persona: dict[str, str]) -> str:
    return f"{persona['name']}: {persona['description']}"


def top_k_indices(doc_embeddings: np.ndarray, persona_embeddings: np.ndarray, k: int) -> np.ndarray:
    """Per document, the indices of the ``k`` most similar personas, best first (embeddings normalised).

    >>> top_k_indices(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]), 2).tolist()
    [[1, 2]]
    """
    scores = doc_embeddings @ persona_embeddings.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def stratified_labels(shares: dict[str, float], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` labels whose counts match ``shares`` as closely as integers allow, in seeded random order.

    Counts use the largest-remainder method, so each label is within one of ``n * share``.

    >>> sorted(stratified_labels({"a": 0.5, "b": 0.3, "c": 0.2}, 10, np.random.default_rng(0)))
    ['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b', 'c', 'c']
    """
    drawn = [label for label, count in quota_targets(shares, n).items() for _ in range(count)]
    return [drawn[i] for i in rng.permutation(n)]


def sampled_configs(
    doc_ids: list[str], candidates: list[list[dict[str, str]]], cfg: dict[str, Any], seed: int
) -> list[dict[str, Any]]:
    """Seeded stratified draws: question type, difficulty and language follow the params' shares;
    the persona is drawn among each document's candidates and the length from the params' range."""
    rng = np.random.default_rng(seed)
    n = len(doc_ids)
    question_types = stratified_labels(cfg["question_types"], n, rng)
    difficulties = stratified_labels(cfg["difficulties"], n, rng)
    languages = stratified_labels(cfg["languages"], n, rng)
    low, high = cfg["length_words"]
    lengths = rng.integers(low, high + 1, size=n)
    rows = []
    for i, doc_id in enumerate(doc_ids):
        persona = candidates[i][rng.integers(len(candidates[i]))]
        rows.append(
            {
                "doc_id": doc_id,
                "task_type": "retrieval",
                "persona_candidates": [c["name"] for c in candidates[i]],
                "persona": persona["name"],
                "persona_description": persona["description"],
                "question_type": question_types[i],
                "difficulty": difficulties[i],
                "language": languages[i],
                "length_words": int(lengths[i]),
                "config_source": "sampled",
            }
        )
    return rows


def answer_schema(
    candidates: list[str], question_types: list[str], difficulties: list[str]
) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["Character", "Question_Type", "Difficulty"],
        "properties": {
            "Character": {"enum": candidates},
            "Question_Type": {"enum": question_types},
            "Difficulty": {"enum": difficulties},
        },
    }


def parse_config_answer(text: str, schema: dict[str, Any]) -> dict[str, str]:
    """The first JSON object in a model answer, validated against ``schema``; ValueError otherwise.

    >>> schema = answer_schema(["nurse"], ["summary"], ["phd"])
    >>> answer = '{"Character": "nurse", "Question_Type": "summary", "Difficulty": "phd"}'
    >>> parse_config_answer("Sure: " + answer, schema)
    {'Character': 'nurse', 'Question_Type': 'summary', 'Difficulty': 'phd'}
    """
    match = JSON_OBJECT.search(text)
    if match is None:
        raise ValueError("no JSON object in the answer")
    try:
        answer = json.loads(match.group(0))
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg}") from err
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as err:
        raise ValueError(f"schema: {err.message}") from err
    return {k: answer[k] for k in ("Character", "Question_Type", "Difficulty")}


def apply_answer(
    row: dict[str, Any], answer: dict[str, str], personas: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """A configuration row with the model's choices in place of the drawn ones."""
    return row | {
        "persona": answer["Character"],
        "persona_description": personas[answer["Character"]]["description"],
        "question_type": answer["Question_Type"],
        "difficulty": answer["Difficulty"],
        "config_source": "llm",
    }


def choose_with_llm(
    rows: list[dict[str, Any]],
    candidates: list[list[dict[str, str]]],
    texts: list[str],
    llm,
    prompt: dict[str, Any],
    cfg: dict[str, Any],
    doc_chars: int,
    seed: int,
) -> dict[str, int]:
    """Let the generator choose each row's persona, question type and difficulty (policy ``llm``).

    Answers are parsed strictly (JSON + schema). A failed row is asked again with the next seed,
    ``cfg['llm_retries']`` times; then it keeps its seeded draw and says ``config_source: fallback``.
    Rows are updated in place; returns the count of failed answers per reason.
    """
    from synthembed.prompts import config_messages

    by_name = {p["name"]: p for group in candidates for p in group}
    question_types, difficulties = list(cfg["question_types"]), list(cfg["difficulties"])
    failures: dict[str, int] = {}
    pending = list(range(len(rows)))
    for attempt in range(cfg["llm_retries"] + 1):
        messages = [
            config_messages(prompt, texts[i], candidates[i], question_types, difficulties, doc_chars)
            for i in pending
        ]
        answers = llm.generate(messages, seed=seed + attempt, desc=f"configs, attempt {attempt + 1}")
        still_pending = []
        for i, answer in zip(pending, answers, strict=True):
            schema = answer_schema(rows[i]["persona_candidates"], question_types, difficulties)
            try:
                rows[i] = apply_answer(rows[i], parse_config_answer(answer, schema), by_name)
            except ValueError as err:
                reason = str(err).split(":")[0]
                failures[reason] = failures.get(reason, 0) + 1
                still_pending.append(i)
        pending = still_pending
    for i in pending:
        rows[i]["config_source"] = "fallback"
    return failures
