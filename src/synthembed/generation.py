"""The queries stage's logic: one request per configuration row (and per code document a hard
negative), grouped by template, answered through the cached LLM and parsed strictly."""

from __future__ import annotations

import json
from typing import Any

from synthembed.answers import TASK_FIELDS, answer_schema, generated_text, parse_answer
from synthembed.corpus import passage, text_blocks
from synthembed.doc2query import doc2query_messages
from synthembed.prompts import (
    RETRIEVAL_TEMPLATES,
    echo_text,
    row_fields,
    task_messages,
    template_name,
    truncate,
)
from synthembed.structural import is_prose

SOURCE_TEMPLATES = {"sts", "bitext"}  # they rewrite the document's opening, not the whole text


def shown_text(template: str, document: str, cfg: dict[str, Any]) -> str:
    """The part of the document the generator sees for this template.

    >>> cfg = {"doc_chars": 12, "source_chars": 5}
    >>> shown_text("retrieval", "alpha beta gamma", cfg), shown_text("bitext", "alpha beta gamma", cfg)
    ('alpha beta', 'alpha')
    """
    limit = cfg["source_chars"] if template in SOURCE_TEMPLATES else cfg["doc_chars"]
    return truncate(document, limit)


def source_opening(title: str | None, text: str, domain: str) -> str:
    """What the sts and bitext rows of a document rewrite (its first ``source_chars`` characters): the
    passage, but of a Markdown text only its prose paragraphs, without the title. A Markdown page or
    part opens with headings, front matter, lists and code, and its title is the page's (a part's, its
    whole file's), so shown its opening the generator rewrites the title alone ("HTTP/2"), too short
    to keep. A text with no prose paragraph keeps its passage: rewritten, its markup gives no better
    text than its title.

    >>> source_opening("Cells", "Cells divide. Then they grow.", "general")
    'Cells\\nCells divide. Then they grow.'
    >>> page = "### `close()`\\n\\n<!-- YAML\\nadded: v8.4.0\\n-->\\n\\nCloses the session.\\n\\n* `code`"
    >>> source_opening("HTTP/2", page, "general")
    'Closes the session.'
    >>> source_opening("HTTP/2", "* `options` {Object}\\n  * `allowHTTP1` {boolean}", "general")
    'HTTP/2\\n* `options` {Object}\\n  * `allowHTTP1` {boolean}'
    >>> source_opening("f", "def f():\\n    # the answer\\n    return 1", "code")
    'f\\ndef f():\\n    # the answer\\n    return 1'
    """
    if domain == "code" or is_prose(text):
        return passage(title, text)
    prose = [block for block in text_blocks(text) if is_prose(block)]
    return "\n\n".join(prose) if prose else passage(title, text)


def answer_rows(
    templates: list[str],
    requests: list[list[dict[str, str]]],
    prompt: dict[str, Any],
    llm,
    seed: int,
    retrieval_llm=None,
    samples: int = 1,
) -> list[dict[str, Any]]:
    """Ask every request ``samples`` times (seeds ``seed``, ``seed + 1``, ...), one group per template,
    and parse each answer.

    ``retrieval_llm`` (the self-trained doc2query model) answers the retrieval templates instead of
    ``llm``, one line each. Returns per request and sample (all requests for the first seed, then for
    the next): raw_output, fields (None when unusable), error (why not), prompt_hash and model (the
    model asked).
    """
    results: list[dict[str, Any]] = [{} for _ in range(len(requests) * samples)]
    for template in dict.fromkeys(templates):
        positions = [i for i, t in enumerate(templates) if t == template]
        asked, answer_format = llm, prompt["format"]
        if retrieval_llm is not None and template in RETRIEVAL_TEMPLATES:
            asked, answer_format = retrieval_llm, "line"
        schema = answer_schema(TASK_FIELDS[template]) if answer_format == "json" else None
        messages = [requests[i] for i in positions]
        raw = asked.generate(messages, seed=seed, desc=f"queries: {template}", schema=schema, samples=samples)
        asked_calls = [
            (sample, i, message)
            for sample in range(samples)
            for i, message in zip(positions, messages, strict=True)
        ]
        for (sample, i, message), output in zip(asked_calls, raw, strict=True):
            fields, error = None, None
            if output is None:
                error = "llm_call_failed"
            else:
                try:
                    fields = parse_answer(output, template, answer_format)
                except ValueError as err:
                    error = f"unparsable: {err}"
            results[sample * len(requests) + i] = {
                "raw_output": output,
                "fields": fields,
                "error": error,
                "prompt_hash": asked.key(message, seed + sample, schema),
                "model": asked.model_name,
            }
    return results


def corpus_examples(
    prompt: dict[str, Any],
    row: dict[str, Any],
    template: str,
    pairs: list[tuple[str, str]],
    cfg: dict[str, Any],
) -> list[dict[str, Any]] | None:
    """Worked examples from the corpus for one row: each (document, query) pair is rendered under the
    row's own controls, so only the documents and the answers differ from the fixed examples; the
    answer takes the prompt's format (a JSON prompt's examples answer in JSON).

    >>> prompt = {"format": "line", "question_types": {}, "languages": {"en": "English"}, "terms": {}}
    >>> row = {"persona": "a nurse", "persona_description": "", "style": "plain", "difficulty": "phd",
    ...        "language": "en", "length_words": 5, "domain_terms": []}
    >>> corpus_examples(prompt, row, "retrieval", [("body text", "a title")], {"doc_chars": 50})[0]["answer"]
    'a title'
    >>> prompt["format"] = "json"
    >>> corpus_examples(prompt, row, "retrieval", [("body text", "a title")], {"doc_chars": 50})[0]["answer"]
    '{"Query": "a title"}'
    >>> corpus_examples(prompt, row, "sts", [("body text", "a title")], {"doc_chars": 50}) is None
    True
    """
    if template not in RETRIEVAL_TEMPLATES or not pairs:
        return None
    field = TASK_FIELDS[template][0]
    return [
        row_fields(prompt, row, shown_text(template, document, cfg))
        | {"answer": json.dumps({field: query}, ensure_ascii=False) if prompt["format"] == "json" else query}
        for document, query in pairs
    ]


def generate_queries(
    rows: list[dict[str, Any]],
    documents: list[str],
    prompt: dict[str, Any],
    llm,
    cfg: dict[str, Any],
    seed: int,
    examples: list[list[tuple[str, str]]] | None = None,
    doc2query: tuple[dict[str, str], Any, int, list[str]] | None = None,
    sources: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The configuration rows with what the generator wrote under their controls.

    Adds: template, candidate, query (the text paired with the document: query, paraphrase,
    translation, or "label: description"), label, label_description, raw_output, parse_error,
    prompt_hash, model (the model that wrote the query), echo_text (the prompt text the answer must
    not repeat where it is not the prompt file's for the template: the neighbours' answers shown as
    worked examples, or the doc2query prompt; their documents are the corpus's own texts, which a query
    may share phrases with, so they are left out), and for retrieval rows of code documents
    (``cfg['code_negatives']``) llm_negative: a similar but functionally different function, with
    llm_negative_error when there is none.

    ``cfg['candidates']`` answers are sampled per row (seeds ``seed``, ``seed + 1``, ...), one output
    row each, for the filter to keep the best; ``examples`` gives per row the (document, query) pairs
    that replace the fixed worked examples of retrieval templates. ``doc2query`` (its prompt, its
    cached LLM, the characters of the document it sees, and per row the document's text without its
    title) asks the self-trained model for the retrieval rows instead, as the doc2query stage trained
    it: on structural pairs, whose positives never hold the document's title. ``sources`` gives per row
    the text its sts and bitext rows rewrite (``source_opening``; None: the document).
    """
    templates = [template_name(r["task_type"], r["domain"]) for r in rows]
    requests = [
        task_messages(
            prompt,
            t,
            row_fields(prompt, r, shown_text(t, sources[i] if sources and t in SOURCE_TEMPLATES else d, cfg)),
            corpus_examples(prompt, r, t, examples[i], cfg) if examples else None,
        )
        for i, (t, r, d) in enumerate(zip(templates, rows, documents, strict=True))
    ]
    echo: list[str | None] = [None] * len(rows)
    for i, template in enumerate(templates):
        if examples and examples[i] and template in RETRIEVAL_TEMPLATES:
            instruction = prompt["tasks"][template]["template"]
            echo[i] = echo_text(prompt["system"], instruction, [query for _, query in examples[i]])
    retrieval_llm = None
    if doc2query is not None:
        doc2query_prompt, retrieval_llm, doc_chars, texts = doc2query
        for i, (template, text) in enumerate(zip(templates, texts, strict=True)):
            if template in RETRIEVAL_TEMPLATES:
                requests[i] = doc2query_messages(doc2query_prompt, template, text, doc_chars)
                echo[i] = echo_text(doc2query_prompt["system"], doc2query_prompt[template], [])
    # all candidates in one call: a candidate is a sample of the same prompt, whose tokens then run once
    answers = answer_rows(templates, requests, prompt, llm, seed, retrieval_llm, cfg["candidates"])
    out = []
    for candidate in range(cfg["candidates"]):
        out += answered_rows(
            rows, templates, answers[candidate * len(rows) : (candidate + 1) * len(rows)], candidate
        )
    out = [row | {"echo_text": echo[i % len(rows)]} for i, row in enumerate(out)]
    if cfg["code_negatives"]:
        negatives = code_negatives(templates, documents, prompt, llm, cfg, seed)
        out = [row | negatives.get(i % len(rows), {}) for i, row in enumerate(out)]
    return out


def doc2query_llm_params(llm_cfg: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """The llm params of the local doc2query model in ``model_dir``: the llm group's sampling and
    batching on the transformers backend, without the llm's price (it is no hosted API).

    >>> llm_cfg = {"backend": "openai", "model": "gpt-x", "price_per_million_tokens": {"input": 0.1,
    ...            "output": 0.4}}
    >>> doc2query_llm_params(llm_cfg, "results/doc2query")
    {'backend': 'transformers', 'model': 'results/doc2query', 'price_per_million_tokens': None}
    """
    return llm_cfg | {"backend": "transformers", "model": model_dir, "price_per_million_tokens": None}


def code_negatives(
    templates: list[str], documents: list[str], prompt: dict[str, Any], llm, cfg: dict[str, Any], seed: int
) -> dict[int, dict[str, Any]]:
    """Per retrieval row of a code document, the generator's similar-but-different function (or why
    there is none), asked once whatever the number of candidates."""
    wanted = [i for i, t in enumerate(templates) if t == "retrieval_code"]
    requests = [
        task_messages(prompt, "code_negative", {"document": shown_text("code_negative", documents[i], cfg)})
        for i in wanted
    ]
    found = answer_rows(["code_negative"] * len(wanted), requests, prompt, llm, seed)
    return {
        i: {
            "llm_negative": answer["fields"]["Negative"] if answer["fields"] else None,
            "llm_negative_error": answer["error"],
        }
        for i, answer in zip(wanted, found, strict=True)
    }


def answered_rows(
    rows: list[dict[str, Any]], templates: list[str], answers: list[dict[str, Any]], candidate: int
) -> list[dict[str, Any]]:
    """The configuration rows with one candidate's parsed answers."""
    out = []
    for row, template, answer in zip(rows, templates, answers, strict=True):
        fields = answer["fields"] or {}
        out.append(
            row
            | {
                "template": template,
                "candidate": candidate,
                "query": generated_text(template, fields) if fields else None,
                "label": fields.get("Label"),
                "label_description": fields.get("Label_Description"),
                "raw_output": answer["raw_output"],
                "parse_error": answer["error"],
                "prompt_hash": answer["prompt_hash"],
                "model": answer["model"],
                "llm_negative": None,
                "llm_negative_error": None,
            }
        )
    return out
