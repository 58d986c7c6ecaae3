"""Keeping pairs that pass the checks; every dropped pair keeps its reason and score."""

from __future__ import annotations

import re
from typing import Any

WORD = re.compile(r"\w+")


def normalized(text: str) -> str:
    """Case- and punctuation-insensitive form used for exact deduplication.

    >>> normalized("How to Sort a dict?  ")
    'how to sort a dict'
    """
    return " ".join(WORD.findall(text.lower()))


def format_reason(query: str, min_words: int, max_words: int) -> str | None:
    """Why a query is malformed, or None.

    >>> format_reason("", 3, 40), format_reason("sort dict", 3, 40), format_reason("sort a dict", 3, 40)
    ('empty', 'too_short', None)
    """
    words = len(query.split())
    if words == 0:
        return "empty"
    if words < min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    return None


def min_cosine(cfg: dict[str, Any], task_type: str) -> float:
    """The cosine threshold of a task type: one number for all, or one per task type.

    >>> min_cosine({"min_cosine": 0.4}, "sts"), min_cosine({"min_cosine": {"bitext": 0.2}}, "bitext")
    (0.4, 0.2)
    """
    threshold = cfg["min_cosine"]
    if isinstance(threshold, dict):
        if task_type not in threshold:
            raise ValueError(f"filter.min_cosine has no threshold for task type {task_type!r}")
        return threshold[task_type]
    return threshold


def anchor_and_positive(task_type: str, generated: str, document: str) -> tuple[str, str]:
    """The training pair of a row: generated text -> document, except classification, where the
    document is the anchor and its label text ("label: description") the positive.

    >>> anchor_and_positive("retrieval", "q", "doc"), anchor_and_positive("classification", "l: d", "doc")
    (('q', 'doc'), ('doc', 'l: d'))
    """
    return (document, generated) if task_type == "classification" else (generated, document)


def filter_decisions(
    texts: list[str | None],
    anchors: list[str | None],
    errors: list[str | None],
    scores: list[float | None],
    thresholds: list[float],
    cfg: dict[str, Any],
) -> list[str | None]:
    """Per row, the rejection reason or None (kept), in the order the checks run.

    An answer the generator did not give or that did not parse keeps its reason; then the format of
    the generated text is checked, then its cosine to the document against the row's threshold, then
    exact duplicates of the anchor: the first occurrence that passed everything else is kept.

    >>> filter_decisions(["sort a dict", "Sort a dict!", "x", "read a file now", None],
    ...                  ["sort a dict", "Sort a dict!", "x", "read a file now", None],
    ...                  [None, None, None, None, "unparsable: no JSON object"],
    ...                  [0.9, 0.8, None, 0.1, None], [0.4] * 5, {"min_words": 2, "max_words": 10})
    [None, 'duplicate', 'too_short', 'low_cosine', 'unparsable']
    """
    decisions: list[str | None] = []
    seen: set[str] = set()
    for text, anchor, error, score, threshold in zip(texts, anchors, errors, scores, thresholds, strict=True):
        if error is not None or text is None:
            decisions.append((error or "empty").split(":")[0])
            continue
        reason = format_reason(text, cfg["min_words"], cfg["max_words"])
        if reason is None and (score is None or score < threshold):
            reason = "low_cosine"
        if reason is None:
            key = normalized(anchor or "")
            reason = "duplicate" if key in seen else None
            seen.add(key)
        decisions.append(reason)
    return decisions
