"""Prompt templates (YAML files under prompts/) rendered into chat messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthembed.io import read_yaml_mapping
from synthembed.llm import Messages

RETRIEVAL_TEMPLATES = ("retrieval", "retrieval_code")  # they ask for a search query
TASK_TEMPLATES = (*RETRIEVAL_TEMPLATES, "sts", "classification", "bitext", "code_negative")
# the placeholders a task template may use: row_fields fills them
TEMPLATE_FIELDS = (
    "persona",
    "persona_description",
    "style",
    "question_type",
    "difficulty",
    "language",
    "length",
    "terms",
    "document",
)


def load_prompt(path: str | Path) -> dict[str, Any]:
    """A single-template prompt file (system, template), e.g. the configuration prompt."""
    prompt = read_yaml_mapping(path)
    for key in ("system", "template"):
        if key not in prompt:
            raise ValueError(f"{path}: prompt file needs a '{key}' entry")
    return prompt


def load_task_prompts(path: str | Path, question_types: Iterable[str] = ()) -> dict[str, Any]:
    """A generation prompt file: answer format, system message and one template per task.

    Every template and worked example is rendered once here, and each of ``question_types`` (those the
    run draws) must have a description, so a broken file fails at load time with the file and task
    named, not halfway through a run.
    """
    prompt = read_yaml_mapping(path)
    for key in ("format", "system", "tasks", "question_types", "languages", "terms"):
        if key not in prompt:
            raise ValueError(f"{path}: prompt file needs a '{key}' entry")
    if prompt["format"] not in ("line", "json"):
        raise ValueError(f"{path}: format must be line or json, not {prompt['format']!r}")
    missing = [t for t in TASK_TEMPLATES if t not in prompt["tasks"]]
    if missing:
        raise ValueError(f"{path}: no template for {', '.join(missing)}")
    undescribed = [q for q in question_types if q not in prompt["question_types"]]
    if undescribed:
        raise ValueError(f"{path}: question_types describes no {', '.join(undescribed)}, which the run draws")
    for name, task in prompt["tasks"].items():
        if not isinstance(task.get("template"), str):
            raise ValueError(f"{path}: tasks.{name} needs a 'template' text")
        try:
            task["template"].format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{path}: tasks.{name} template: unknown or broken placeholder {err}") from err
        for number, example in enumerate(task.get("examples", []), start=1):
            try:
                example_turn(task, example)
            except KeyError as err:
                raise ValueError(f"{path}: tasks.{name} example {number} lacks {err}") from err
    return prompt


def truncate(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters of ``text``, cut at the last whitespace (space, tab, newline)
    among them so no word is split; when only whitespace comes before it, the first word is cut instead.

    >>> truncate("alpha beta gamma", 12), truncate("alpha\\nbeta\\tgamma", 12)
    ('alpha beta', 'alpha\\nbeta')
    >>> truncate(" alphabet soup", 6), truncate("alphabet soup", 5), truncate("alpha beta gamma", 10)
    (' alpha', 'alpha', 'alpha beta')
    """
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if text[max_chars].isspace() and cut.strip():  # the limit falls between words: the last one is whole
        return cut.rstrip()
    head = re.sub(r"\S+$", "", cut)[:-1]  # up to the last whitespace, without it
    return head if head.strip() else cut


def template_name(task_type: str, domain: str | None) -> str:
    """The template of a row: retrieval rows of code documents ask what the function does.

    >>> [template_name(t, d) for t, d in [("retrieval", "code"), ("retrieval", "law"), ("sts", "code")]]
    ['retrieval_code', 'retrieval', 'sts']
    """
    return "retrieval_code" if task_type == "retrieval" and domain == "code" else task_type


def terms_sentence(prompt: dict[str, Any], terms: list[str]) -> str:
    """The glossary line of a prompt, or nothing when the document matched no term.

    >>> terms_sentence({"terms": " Use: {terms}."}, ["socket", "timeout"]), terms_sentence({"terms": "x"}, [])
    (' Use: socket, timeout.', '')
    """
    return prompt["terms"].format(terms=", ".join(terms)) if terms else ""


def row_fields(prompt: dict[str, Any], row: dict[str, Any], document: str) -> dict[str, Any]:
    """Template fields (``TEMPLATE_FIELDS``) of one configuration row and its document text."""
    question_type = row.get("question_type")
    return {
        "persona": row["persona"],
        "persona_description": row["persona_description"],
        "style": row["style"],
        "question_type": prompt["question_types"][question_type] if question_type else "",
        "difficulty": row["difficulty"],
        "language": prompt["languages"].get(row["language"], row["language"]),
        "length": row["length_words"],
        "terms": terms_sentence(prompt, row["domain_terms"]),
        "document": document,
    }


def example_turn(task: dict[str, Any], example: dict[str, Any]) -> Messages:
    """A worked example as a user turn and the assistant's answer."""
    fields = {"terms": "", "persona_description": ""} | {k: v for k, v in example.items() if k != "answer"}
    return [
        {"role": "user", "content": task["template"].format(**fields)},
        {"role": "assistant", "content": str(example["answer"])},
    ]


def echo_text(system: str, instruction: str, examples: list[str]) -> str:
    """The text of a prompt that a generated text must not repeat: the system message, the instruction
    with its placeholders removed, and the worked examples' texts. A generated text that repeats it
    echoes the prompt instead of describing the document.

    >>> echo_text("Be brief.", "Query for {document}:", ["a worked answer"])
    'Be brief.\\nQuery for  :\\na worked answer'
    """
    return "\n".join([system, re.sub(r"\{[a-z_]+\}", " ", instruction), *examples])


def prompt_text(prompt: dict[str, Any], template: str) -> str:
    """``echo_text`` of a template of the prompt file, with its fixed worked examples (documents and
    answers).

    >>> prompt = {"system": "Be brief.", "tasks": {"sts": {"template": "Paraphrase {document} now",
    ...           "examples": [{"document": "cats purr", "answer": "felines purr"}]}}}
    >>> prompt_text(prompt, "sts")
    'Be brief.\\nParaphrase   now\\ncats purr\\nfelines purr'
    """
    task = prompt["tasks"][template]
    examples = [str(text) for e in task.get("examples", []) for text in (e.get("document", ""), e["answer"])]
    return echo_text(prompt["system"], task["template"], examples)


def task_messages(
    prompt: dict[str, Any],
    template: str,
    fields: dict[str, Any],
    examples: list[dict[str, Any]] | None = None,
) -> Messages:
    """System message, worked examples as earlier turns, then this row's request.

    ``examples`` (template fields plus ``answer``) replace the prompt file's own worked examples, e.g.
    with pairs taken from the corpus itself.
    """
    task = prompt["tasks"][template]
    messages = [{"role": "system", "content": prompt["system"]}]
    for example in task.get("examples", []) if examples is None else examples:
        messages.extend(example_turn(task, example))
    messages.append({"role": "user", "content": task["template"].format(**fields)})
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
