"""Turning raw generator output into fields: strict JSON + schema, or one cleaned line. Never eval."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

# The answer fields of each template, in the order a one-line answer gives them ("label: description").
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "retrieval": ("Query",),
    "retrieval_code": ("Query",),
    "sts": ("Paraphrase",),
    "classification": ("Label", "Label_Description"),
    "bitext": ("Translation",),
    "code_negative": ("Negative",),
}
LEADING_LABEL = re.compile(
    r"^\s*(?:[-*\d.)]+\s+)?(?:search\s+)?(?:query|question|keywords?|answer|translation|paraphrase)\s*:\s*",
    re.IGNORECASE,
)
# A colon before a space, or a spaced dash: "http://x.org" or "12:30" are no separators.
FIELD_SEPARATOR = re.compile(r":\s|\s[-\u2013\u2014]\s")
QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}  # opening: closing


def clean_line(raw: str) -> str:
    """The first non-empty line of a completion, without list markers, labels or surrounding quotes.

    >>> clean_line('Query: "how to sort a dict by value"\\nExplanation: ...')
    'how to sort a dict by value'
    >>> clean_line("\\n\\n1. sourdough feeding schedule")
    'sourdough feeding schedule'
    """
    line = next((ln for ln in raw.splitlines() if ln.strip()), "")
    line = LEADING_LABEL.sub("", line)
    line = re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", line)
    return unquoted(line.strip())


def unquoted(text: str) -> str:
    """``text`` without a pair of matching quotes around all of it; quotes inside it, or a quote
    without its partner, are part of the text.

    >>> unquoted("\u201chow to sort a dict\u201d"), unquoted("'hi'")
    ('how to sort a dict', 'hi')
    >>> unquoted("def greet(name): return 'hi'"), unquoted('"with" statement in python')
    ("def greet(name): return 'hi'", '"with" statement in python')
    >>> unquoted('"an answer cut before its quote closed')
    '"an answer cut before its quote closed'
    """
    closing = QUOTE_PAIRS.get(text[:1])
    if closing and len(text) >= 2 and text.endswith(closing) and closing not in text[1:-1]:
        return text[1:-1].strip()
    return text


def answer_schema(fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of an answer with these string fields (strict: no other keys).

    >>> answer_schema(("Query",))["required"]
    ['Query']
    """
    return {
        "type": "object",
        "properties": {name: {"type": "string", "minLength": 1} for name in fields},
        "required": list(fields),
        "additionalProperties": False,
    }


def first_json_object(text: str) -> Any:
    """The first complete JSON object in ``text`` (prose or code fences around it are ignored).

    >>> first_json_object('Sure! ```json\\n{"Query": "a {b} c"}\\n```')
    {'Query': 'a {b} c'}
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object")


def parse_json_answer(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The first JSON object in ``text`` validated against ``schema``; ValueError says why not."""
    answer = first_json_object(text)
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as err:
        raise ValueError(f"schema: {err.message}") from err
    return answer


def parse_answer(raw: str, template: str, answer_format: str) -> dict[str, str]:
    """The fields of one answer; ValueError with a short reason when it does not parse.

    >>> parse_answer('{"Label": "json", "Label_Description": "objects as text"}', "classification", "json")
    {'Label': 'json', 'Label_Description': 'objects as text'}
    >>> parse_answer("json serialization: objects to text", "classification", "line")
    {'Label': 'json serialization', 'Label_Description': 'objects to text'}
    >>> parse_answer("csv reading - functions that parse rows: fields", "classification", "line")
    {'Label': 'csv reading', 'Label_Description': 'functions that parse rows: fields'}
    >>> parse_answer("Query: sort a dict", "retrieval", "line")
    {'Query': 'sort a dict'}
    >>> parse_answer("http://x.org - the project's site", "classification", "line")
    {'Label': 'http://x.org', 'Label_Description': "the project's site"}
    """
    fields = TASK_FIELDS[template]
    if answer_format == "json":
        answer = parse_json_answer(raw, answer_schema(fields))
        stripped = {name: answer[name].strip() for name in fields}
        if not all(stripped.values()):  # blank fields pass the schema's minLength
            raise ValueError("empty answer")
        return stripped
    line = clean_line(raw)
    # Small models separate label and description with a colon or a spaced dash.
    parts = [line] if len(fields) == 1 else [p.strip() for p in FIELD_SEPARATOR.split(line, len(fields) - 1)]
    if len(parts) != len(fields) or not all(parts):
        raise ValueError("empty answer" if not line else f"expected {' : '.join(fields)}")
    return dict(zip(fields, parts, strict=True))


def generated_text(template: str, answer: dict[str, str]) -> str:
    """The text that pairs with the document: the query, paraphrase or translation, or for
    classification the label with its description.

    >>> generated_text("classification", {"Label": "json", "Label_Description": "objects as text"})
    'json: objects as text'
    """
    if template == "classification":
        return f"{answer['Label']}: {answer['Label_Description']}"
    return answer[TASK_FIELDS[template][0]]
