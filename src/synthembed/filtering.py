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


def filter_decisions(queries: list[str], scores: list[float | None], cfg: dict[str, Any]) -> list[str | None]:
    """Per row, the rejection reason or None (kept), in the order the checks run.

    Format checks come first, then the cosine threshold, then exact duplicates: the first
    occurrence of a normalised query that passed everything else is kept.

    >>> filter_decisions(["sort a dict", "Sort a dict!", "x", "read a file now"], [0.9, 0.8, None, 0.1],
    ...                  {"min_words": 2, "max_words": 10, "min_cosine": 0.4})
    [None, 'duplicate', 'too_short', 'low_cosine']
    """
    decisions: list[str | None] = []
    seen: set[str] = set()
    for query, score in zip(queries, scores, strict=True):
        reason = format_reason(query, cfg["min_words"], cfg["max_words"])
        if reason is None and (score is None or score < cfg["min_cosine"]):
            reason = "low_cosine"
        if reason is None:
            key = normalized(query)
            reason = "duplicate" if key in seen else None
            seen.add(key)
        decisions.append(reason)
    return decisions
