"""Turning raw generator output into a query string."""

from __future__ import annotations

import re

LEADING_LABEL = re.compile(
    r"^\s*(?:[-*\d.)]+\s+)?(?:search\s+)?(?:query|question|keywords?)\s*:\s*", re.IGNORECASE
)
QUOTES = "\"'`\u201c\u201d\u2018\u2019"  # ASCII and typographic quotes


def clean_query(raw: str) -> str:
    """The first non-empty line of a completion, without list markers, labels or surrounding quotes.

    >>> clean_query('Query: "how to sort a dict by value"\\nExplanation: ...')
    'how to sort a dict by value'
    >>> clean_query("\\n\\n1. sourdough feeding schedule")
    'sourdough feeding schedule'
    """
    line = next((ln for ln in raw.splitlines() if ln.strip()), "")
    line = LEADING_LABEL.sub("", line)
    line = re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", line)
    return line.strip().strip(QUOTES).strip()
