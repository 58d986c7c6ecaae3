"""Per-document generation configurations: persona, question type, difficulty, language, length."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from synthembed.answers import parse_json_answer
from synthembed.balance import quota_targets
from synthembed.io import read_yaml_mapping
from synthembed.params import drawn_labels
from synthembed.shards import shard_items

PERSONA_KEYS = ("name", "domain", "description", "style")
CONFIG_SCHEMA = {
    "doc_id": pl.String,
    "task_type": pl.String,
    "domain": pl.String,
    "doc_language": pl.String,
    "language": pl.String,
    "cross_lingual": pl.Boolean,
    "persona_candidates": pl.List(pl.String),
    "persona_rank": pl.Int64,
    "persona": pl.String,
    "persona_description": pl.String,
    "style": pl.String,
    "question_type": pl.String,
    "difficulty": pl.String,
    "length_words": pl.Int64,
    "domain_terms": pl.List(pl.String),
    "config_source": pl.String,
}


def load_personas(path: str | Path) -> list[dict[str, str]]:
    """The persona library: a non-empty list of {name, domain, description, style}; names must be unique."""
    personas = read_yaml_mapping(path).get("personas")
    if not isinstance(personas, list) or not personas:
        raise ValueError(f"{path}: 'personas' must be a non-empty list of personas")
    for number, persona in enumerate(personas, start=1):
        if not isinstance(persona, dict):
            raise ValueError(f"{path}: persona {number} must be a mapping of {', '.join(PERSONA_KEYS)}")
        missing = [k for k in PERSONA_KEYS if not persona.get(k)]
        if missing:
            raise ValueError(f"{path}: persona {number} lacks {', '.join(missing)}")
    names = [p["name"] for p in personas]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: persona names must be unique")
    return personas


def load_glossary(path: str | Path) -> dict[str, list[str]]:
    """Domain terms per document domain: a mapping of domain -> list of terms (may be empty)."""
    glossary = read_yaml_mapping(path)
    if not all(
        isinstance(terms, list) and all(isinstance(t, str) and t for t in terms)
        for terms in glossary.values()
    ):
        raise ValueError(f"{path}: a glossary maps each domain to a list of terms")
    return glossary


def persona_text(persona: dict[str, str]) -> str:
    return f"{persona['name']}: {persona['description']}"


def stratified_labels(shares: dict[str, float], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` labels whose counts match ``shares`` as closely as integers allow, in seeded random order.

    Counts use the largest-remainder method, so each label is within one of ``n * share``.

    >>> sorted(stratified_labels({"a": 0.5, "b": 0.3, "c": 0.2}, 10, np.random.default_rng(0)))
    ['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b', 'c', 'c']
    """
    drawn = [label for label, count in quota_targets(shares, n).items() for _ in range(count)]
    return [drawn[i] for i in rng.permutation(n)]


def glossary_matches(text: str, terms: list[str], limit: int) -> list[str]:
    """Up to ``limit`` glossary terms that occur in ``text`` as whole words (case-insensitive), in
    glossary order.

    >>> glossary_matches("Open a Socket with a timeout", ["thread", "socket", "timeout"], 5)
    ['socket', 'timeout']
    >>> glossary_matches("threading.Lock()", ["thread"], 5)
    []
    """
    lowered = text.lower()
    found = [t for t in terms if re.search(rf"\b{re.escape(t.lower())}\b", lowered)]
    return found[:limit]


def stratified_subset(
    shares: dict[str, float], positions: list[int], n: int, rng: np.random.Generator
) -> list[str | None]:
    """Labels drawn by ``stratified_labels`` for the rows at ``positions``; None for the other rows."""
    labels: list[str | None] = [None] * n
    for position, label in zip(positions, stratified_labels(shares, len(positions), rng), strict=True):
        labels[position] = label
    return labels


def config_plan(n: int, persona_candidates: int, cfg: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Seeded stratified draws of every control for ``n`` documents: task type, question type,
    difficulty, language, persona rank (0-based, among ``persona_candidates``) and length.

    Task types follow ``cfg['task_types']``; the persona is drawn evenly over the ranks of each
    document's candidates. A control is set only on the rows whose prompts use it, and drawn among those
    rows, so its shares hold there: question type and difficulty on retrieval rows, length on retrieval
    and sts rows, the query language (``cfg['languages']``) on all rows but bitext, whose target
    language comes from ``cfg['bitext_languages']``. The plan depends on ``n`` only, not on the
    documents, so each shard of a split corpus takes its rows from the one plan.

    >>> cfg = {"task_types": {"retrieval": 1.0}, "question_types": {"summary": 1.0},
    ...        "difficulties": {"phd": 1.0}, "languages": {"en": 1.0}, "bitext_languages": {"de": 1.0},
    ...        "length_words": [5, 5]}
    >>> [(d["task_type"], d["language"], d["persona_rank"]) for d in config_plan(2, 2, cfg, seed=0)]
    [('retrieval', 'en', 1), ('retrieval', 'en', 0)]
    """
    rng = np.random.default_rng(seed)
    task_types = stratified_labels(cfg["task_types"], n, rng)
    where = {task: [i for i, t in enumerate(task_types) if t == task] for task in cfg["task_types"]}
    retrieval = where.get("retrieval", [])
    with_length = set(retrieval + where.get("sts", []))
    monolingual_tasks = sorted(i for i, t in enumerate(task_types) if t != "bitext")
    question_types = stratified_subset(cfg["question_types"], retrieval, n, rng)
    difficulties = stratified_subset(cfg["difficulties"], retrieval, n, rng)
    languages = stratified_subset(cfg["languages"], monolingual_tasks, n, rng)
    targets = stratified_subset(cfg["bitext_languages"], where.get("bitext", []), n, rng)
    ranks = stratified_labels({str(r): 1.0 for r in range(persona_candidates)}, n, rng)
    low, high = cfg["length_words"]
    lengths = rng.integers(low, high + 1, size=n)
    return [
        {
            "task_type": task_types[i],
            "question_type": question_types[i],
            "difficulty": difficulties[i],
            "language": targets[i] if task_types[i] == "bitext" else languages[i],
            "persona_rank": int(ranks[i]),
            "length_words": int(lengths[i]) if i in with_length else None,
        }
        for i in range(n)
    ]


def config_row(
    doc: dict[str, Any],
    draw: dict[str, Any],
    candidates: list[dict[str, str]],
    glossary: dict[str, list[str]],
    glossary_terms: int,
) -> dict[str, Any]:
    """One document's configuration: its ``config_plan`` draw with the drawn persona among its
    ``candidates`` and the glossary terms found in its text (``doc`` has doc_id, domain, lang, text)."""
    persona = candidates[draw["persona_rank"]]
    return {
        "doc_id": doc["doc_id"],
        "task_type": draw["task_type"],
        "domain": doc["domain"],
        "doc_language": doc["lang"],
        "language": draw["language"],
        "cross_lingual": draw["language"] != doc["lang"],
        "persona_candidates": [c["name"] for c in candidates],
        "persona_rank": draw["persona_rank"] + 1,
        "persona": persona["name"],
        "persona_description": persona["description"],
        "style": persona["style"],
        "question_type": draw["question_type"],
        "difficulty": draw["difficulty"],
        "length_words": draw["length_words"],
        "domain_terms": glossary_matches(doc["text"], glossary.get(doc["domain"], []), glossary_terms),
        "config_source": "sampled",
    }


def sampled_configs(
    docs: list[dict[str, Any]],
    candidates: list[list[dict[str, str]]],
    persona_candidates: int,
    cfg: dict[str, Any],
    glossary: dict[str, list[str]],
    seed: int,
    total: int | None = None,
    shard_ids: Sequence[int] = (0,),
    shard: int = 0,
) -> list[dict[str, Any]]:
    """One configuration per document of one shard (``config_plan`` then ``config_row``).

    ``docs`` are the shard's documents (``shard_rows`` of the ``total`` sampled ones, default: all of
    them), ``candidates`` each one's ``persona_candidates`` retrieved personas, best first. The shard
    takes its draws (``shard_items``) from the plan of all ``total`` documents, so the shards together
    hold the rows one unsharded run writes.
    """
    plan = config_plan(len(docs) if total is None else total, persona_candidates, cfg, seed)
    return [
        config_row(doc, draw, doc_candidates, glossary, cfg["glossary_terms"])
        for doc, draw, doc_candidates in zip(
            docs, shard_items(plan, list(shard_ids), shard), candidates, strict=True
        )
    ]


def config_answer_schema(
    candidates: list[str], question_types: list[str], difficulties: list[str]
) -> dict[str, Any]:
    """The JSON schema of the model's configuration choice: one of ``candidates`` (persona names), of
    the question types and of the difficulties, and nothing else. Strict structured outputs (OpenAI's
    ``strict: true``) need every property typed and required, and no other property.

    >>> config_answer_schema(["nurse"], ["summary"], ["phd"])["properties"]["Character"]
    {'type': 'string', 'enum': ['nurse']}
    """
    return {
        "type": "object",
        "required": ["Character", "Question_Type", "Difficulty"],
        "properties": {
            "Character": {"type": "string", "enum": candidates},
            "Question_Type": {"type": "string", "enum": question_types},
            "Difficulty": {"type": "string", "enum": difficulties},
        },
        "additionalProperties": False,
    }


def parse_config_answer(text: str, schema: dict[str, Any]) -> dict[str, str]:
    """The first JSON object in a model answer, validated against ``schema``; ValueError otherwise.

    >>> schema = config_answer_schema(["nurse"], ["summary"], ["phd"])
    >>> answer = '{"Character": "nurse", "Question_Type": "summary", "Difficulty": "phd"}'
    >>> parse_config_answer("Sure: " + answer, schema)
    {'Character': 'nurse', 'Question_Type': 'summary', 'Difficulty': 'phd'}
    """
    answer = parse_json_answer(text, schema)
    return {k: answer[k] for k in ("Character", "Question_Type", "Difficulty")}


def apply_answer(
    row: dict[str, Any], answer: dict[str, str], personas: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """A configuration row with the model's choices in place of the drawn ones; question type and
    difficulty only where the row's prompt uses them (retrieval)."""
    persona = personas[answer["Character"]]
    chosen = row | {
        "persona": persona["name"],
        "persona_rank": row["persona_candidates"].index(persona["name"]) + 1,
        "persona_description": persona["description"],
        "style": persona["style"],
        "config_source": "llm",
    }
    if row["task_type"] == "retrieval":
        chosen |= {"question_type": answer["Question_Type"], "difficulty": answer["Difficulty"]}
    return chosen


def choose_with_llm(
    rows: list[dict[str, Any]],
    candidates: list[list[dict[str, str]]],
    texts: list[str],
    llm,
    prompt: dict[str, Any],
    cfg: dict[str, Any],
    doc_chars: int,
    seed: int,
    temperature: float,
) -> dict[str, int]:
    """Let the generator choose each row's persona, question type and difficulty (policy ``llm``).

    Answers are parsed strictly (JSON + schema). A failed row is asked again with the next seed,
    ``cfg['llm_retries']`` times; then it keeps its seeded draw and says ``config_source: fallback``.
    At ``temperature`` 0 (greedy) another seed gives the same answer, so there are no retries. Rows
    are updated in place; returns the count of failed answers per reason.
    """
    from synthembed.prompts import config_messages

    by_name = {p["name"]: p for group in candidates for p in group}
    # only what configs may draw: a label switched off (share 0) has no quota downstream
    question_types, difficulties = drawn_labels(cfg["question_types"]), drawn_labels(cfg["difficulties"])
    failures: dict[str, int] = {}
    pending = list(range(len(rows)))
    # Sent for guided decoding; each row's own candidate names are checked when its answer is parsed.
    request_schema = config_answer_schema([], question_types, difficulties)
    request_schema["properties"]["Character"] = {"type": "string"}
    for attempt in range(cfg["llm_retries"] + 1 if temperature > 0 else 1):
        messages = [
            config_messages(prompt, texts[i], candidates[i], question_types, difficulties, doc_chars)
            for i in pending
        ]
        answers = llm.generate(
            messages, seed=seed + attempt, desc=f"configs, attempt {attempt + 1}", schema=request_schema
        )
        still_pending = []
        for i, answer in zip(pending, answers, strict=True):
            schema = config_answer_schema(rows[i]["persona_candidates"], question_types, difficulties)
            try:
                if answer is None:
                    raise ValueError("llm_call_failed")
                rows[i] = apply_answer(rows[i], parse_config_answer(answer, schema), by_name)
            except ValueError as err:
                reason = str(err).split(":")[0]
                failures[reason] = failures.get(reason, 0) + 1
                still_pending.append(i)
        pending = still_pending
    for i in pending:
        rows[i]["config_source"] = "fallback"
    return failures


def control_targets(
    cfg: dict[str, Any], persona_candidates: int
) -> dict[str, tuple[str | None, dict[str, float]]]:
    """Per control: the task type whose rows it applies to (None: all rows) and its target shares."""
    return {
        "task_type": (None, cfg["task_types"]),
        "question_type": ("retrieval", cfg["question_types"]),
        "difficulty": ("retrieval", cfg["difficulties"]),
        "language": ("!bitext", cfg["languages"]),
        "bitext_language": ("bitext", cfg["bitext_languages"]),
        "persona_rank": (None, {str(r): 1.0 for r in range(1, persona_candidates + 1)}),
    }


def achieved_shares(
    rows: list[dict[str, Any]], targets: dict[str, tuple[str | None, dict[str, float]]]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per control and label: target and achieved share (%) among the rows the control applies to.

    >>> rows = [{"task_type": "retrieval", "question_type": "summary"}, {"task_type": "sts"}]
    >>> table = achieved_shares(rows, {"question_type": ("retrieval", {"summary": 1.0, "keywords": 1.0})})
    >>> table["question_type"]["summary"], table["question_type"]["keywords"]
    ({'target': 50.0, 'achieved': 100.0}, {'target': 50.0, 'achieved': 0.0})
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    for control, (task, shares) in targets.items():
        if task is None:
            subset = rows
        elif task.startswith("!"):
            subset = [r for r in rows if r["task_type"] != task[1:]]
        else:
            subset = [r for r in rows if r["task_type"] == task]
        column = "language" if control == "bitext_language" else control
        values = [str(r[column]) for r in subset]
        total = sum(shares.values())
        table[control] = {
            label: {
                "target": round(100 * share / total, 2),
                "achieved": round(100 * values.count(label) / len(values), 2) if values else 0.0,
            }
            for label, share in shares.items()
        }
    return table
