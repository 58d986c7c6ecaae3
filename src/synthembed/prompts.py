"""Prompt templates (YAML files under prompts/) rendered into chat messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synthembed.llm import Messages


def load_prompt(path: str | Path) -> dict[str, Any]:
    prompt = yaml.safe_load(Path(path).read_text())
    for key in ("system", "template"):
        if key not in prompt:
            raise ValueError(f"{path}: prompt file needs a '{key}' entry")
    return prompt


def truncate(text: str, max_chars: int) -> str:
    """Cut at the last whitespace before ``max_chars`` so no word is split.

    >>> truncate("alpha beta gamma", 12)
    'alpha beta'
    """
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def query_fields(prompt: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Template fields of one configuration row (persona, question type, difficulty, language, length)."""
    return {
        "persona": config["persona"],
        "persona_description": config["persona_description"],
        "question_type": prompt["question_types"][config["question_type"]],
        "difficulty": config["difficulty"],
        "language": prompt["languages"].get(config["language"], config["language"]),
        "length": config["length_words"],
    }


def query_messages(prompt: dict[str, Any], config: dict[str, Any], document: str, doc_chars: int) -> Messages:
    """Few-shot chat: the worked examples as earlier turns, then this document under its controls."""
    messages = [{"role": "system", "content": prompt["system"]}]
    for example in prompt.get("examples", []):
        fields = {k: v for k, v in example.items() if k != "query"} | {"persona_description": ""}
        messages.append({"role": "user", "content": prompt["template"].format(**fields)})
        messages.append({"role": "assistant", "content": example["query"]})
    fields = query_fields(prompt, config) | {"document": truncate(document, doc_chars)}
    messages.append({"role": "user", "content": prompt["template"].format(**fields)})
    return messages


def config_messages(
    prompt: dict[str, Any],
    document: str,
    candidates: list[dict[str, str]],
    question_types: list[str],
    difficulties: list[str],
    doc_chars: int,
) -> Messages:
    """The configuration question of the Qwen3-Embedding report for one document."""
    listing = "\n".join(f"- {c['name']}: {c['description']}" for c in candidates)
    content = prompt["template"].format(
        document=truncate(document, doc_chars),
        candidates=listing,
        question_types=", ".join(question_types),
        difficulties=", ".join(difficulties),
    )
    return [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": content}]
