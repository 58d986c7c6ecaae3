"""The queries stage's logic: one request per configuration row (and per code document a hard
negative), grouped by template, answered through the cached LLM and parsed strictly."""

from __future__ import annotations

import logging
from typing import Any

from synthembed.answers import TASK_FIELDS, answer_schema, generated_text, parse_answer
from synthembed.prompts import row_fields, task_messages, template_name, truncate

logger = logging.getLogger(__name__)

SOURCE_TEMPLATES = {"sts", "bitext"}  # they rewrite the document's opening, not the whole text


def shown_text(template: str, document: str, cfg: dict[str, Any]) -> str:
    """The part of the document the generator sees for this template.

    >>> cfg = {"doc_chars": 12, "source_chars": 5}
    >>> shown_text("retrieval", "alpha beta gamma", cfg), shown_text("bitext", "alpha beta gamma", cfg)
    ('alpha beta', 'alpha')
    """
    limit = cfg["source_chars"] if template in SOURCE_TEMPLATES else cfg["doc_chars"]
    return truncate(document, limit)


def answer_rows(
    templates: list[str],
    requests: list[list[dict[str, str]]],
    prompt: dict[str, Any],
    llm,
    seed: int,
) -> list[dict[str, Any]]:
    """Ask every request, one group per template, and parse each answer.

    Returns per request: raw_output, fields (None when unusable), error (why not) and prompt_hash.
    """
    results: list[dict[str, Any]] = [{} for _ in requests]
    for template in dict.fromkeys(templates):
        positions = [i for i, t in enumerate(templates) if t == template]
        schema = answer_schema(TASK_FIELDS[template]) if prompt["format"] == "json" else None
        messages = [requests[i] for i in positions]
        raw = llm.generate(messages, seed=seed, desc=f"queries: {template}", schema=schema)
        for i, message, output in zip(positions, messages, raw, strict=True):
            fields, error = None, None
            if output is None:
                error = "llm_call_failed"
            else:
                try:
                    fields = parse_answer(output, template, prompt["format"])
                except ValueError as err:
                    error = f"unparsable: {err}"
            results[i] = {
                "raw_output": output,
                "fields": fields,
                "error": error,
                "prompt_hash": llm.key(message, seed, schema),
            }
    return results


def generate_queries(
    rows: list[dict[str, Any]],
    documents: list[str],
    prompt: dict[str, Any],
    llm,
    cfg: dict[str, Any],
    seed: int,
) -> list[dict[str, Any]]:
    """The configuration rows with what the generator wrote under their controls.

    Adds: template, query (the text paired with the document: query, paraphrase, translation, or
    "label: description"), label, label_description, raw_output, parse_error, prompt_hash, and for
    retrieval rows of code documents (``cfg['code_negatives']``) llm_negative: a similar but
    functionally different function, with llm_negative_error when there is none.
    """
    templates = [template_name(r["task_type"], r["domain"]) for r in rows]
    requests = [
        task_messages(prompt, t, row_fields(prompt, r, shown_text(t, d, cfg)))
        for t, r, d in zip(templates, rows, documents, strict=True)
    ]
    answers = answer_rows(templates, requests, prompt, llm, seed)
    negatives: dict[int, dict[str, Any]] = {}
    if cfg["code_negatives"]:
        wanted = [i for i, t in enumerate(templates) if t == "retrieval_code"]
        negative_requests = [
            task_messages(
                prompt, "code_negative", {"document": shown_text("code_negative", documents[i], cfg)}
            )
            for i in wanted
        ]
        found = answer_rows(["code_negative"] * len(wanted), negative_requests, prompt, llm, seed)
        negatives = dict(zip(wanted, found, strict=True))
    out = []
    for i, (row, template, answer) in enumerate(zip(rows, templates, answers, strict=True)):
        fields = answer["fields"] or {}
        negative = negatives.get(i)
        out.append(
            row
            | {
                "template": template,
                "query": generated_text(template, fields) if fields else None,
                "label": fields.get("Label"),
                "label_description": fields.get("Label_Description"),
                "raw_output": answer["raw_output"],
                "parse_error": answer["error"],
                "prompt_hash": answer["prompt_hash"],
                "llm_negative": negative["fields"]["Negative"] if negative and negative["fields"] else None,
                "llm_negative_error": negative["error"] if negative else None,
            }
        )
    return out
