"""Keeping pairs that pass the checks; every dropped pair keeps its reason and score.

The checks run in a fixed order and a row is rejected by the first it fails: parse errors, format
(empty, too_short, too_long), repetitive text, prompt echo, copied text, wrong language, low cosine,
round trip, then exact and near duplicates among the rows that passed everything else.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl

WORD = re.compile(r"\w+")
# The per-row checks a shard writes (scripts/filter_shard.py), by row of the queries file.
CHECK_SCHEMA = {
    "row": pl.Int64,
    "detected_language": pl.String,
    "copied": pl.Boolean,
    "repetitive": pl.Boolean,
    "echo": pl.Boolean,
}


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


def scorable_rows(texts: list[str | None], parse_errors: list[str | None], cfg: dict[str, Any]) -> list[int]:
    """The rows worth embedding: parsed, with a well-formed text (the other checks need the scores).

    >>> cfg = {"min_words": 2, "max_words": 9}
    >>> scorable_rows(["sort a dict", None, "x"], [None, "unparsable", None], cfg)
    [0]
    """
    bounds = cfg["min_words"], cfg["max_words"]
    return [
        i
        for i, (text, error) in enumerate(zip(texts, parse_errors, strict=True))
        if error is None and text is not None and format_reason(text, *bounds) is None
    ]


def text_checks(
    text: str | None, document: str, task_type: str, prompt_grams: set[tuple[str, ...]], cfg: dict[str, Any]
) -> dict[str, bool]:
    """The checks of one generated text that need no model: copied from its document (not for
    classification, whose text is a label), looping, echoing its prompt (``prompt_grams``: the prompt's
    word n-grams of ``cfg['echo_min_words']`` words); each off when its param is.

    >>> cfg = {"copied_min_words": 4, "repetition_check": True, "echo_min_words": 5}
    >>> text_checks("the cat sat on the mat", "so the cat sat on the mat today", "retrieval", set(), cfg)
    {'copied': True, 'repetitive': False, 'echo': False}
    """
    if text is None:
        return {"copied": False, "repetitive": False, "echo": False}
    return {
        "copied": cfg["copied_min_words"] is not None
        and task_type != "classification"
        and copied_span(text, document, cfg["copied_min_words"]),
        "repetitive": cfg["repetition_check"] and repetitive(text),
        "echo": cfg["echo_min_words"] is not None and echoes(text, prompt_grams, cfg["echo_min_words"]),
    }


def anchor_and_positive(task_type: str, generated: str, document: str) -> tuple[str, str]:
    """The training pair of a row: generated text -> document, except classification, where the
    document is the anchor and its label text ("label: description") the positive.

    >>> anchor_and_positive("retrieval", "q", "doc"), anchor_and_positive("classification", "l: d", "doc")
    (('q', 'doc'), ('doc', 'l: d'))
    """
    return (document, generated) if task_type == "classification" else (generated, document)


def cosine_thresholds(
    task_types: list[str], scores: list[float | None], cfg: dict[str, Any]
) -> dict[str, float]:
    """The cosine threshold of each task type: ``min_cosine`` (one number, one per task type, or
    null) and, when ``cosine_percentile`` is set, that percentile of the task type's scores in this
    run — each embedding model has its own scale. The stricter of the two applies.

    >>> cosine_thresholds(["sts"] * 4, [0.1, 0.2, 0.3, 0.4], {"min_cosine": 0.15, "cosine_percentile": 50})
    {'sts': 0.25}
    >>> per_task = {"min_cosine": {"sts": 0.4}, "cosine_percentile": None}
    >>> cosine_thresholds(["sts", "bitext"], [0.5, 0.1], per_task)
    {'sts': 0.4, 'bitext': -1.0}
    """
    thresholds = {}
    for task_type in dict.fromkeys(task_types):
        absolute = cfg["min_cosine"]
        if isinstance(absolute, dict):
            absolute = absolute.get(task_type)
        threshold = -1.0 if absolute is None else absolute
        task_scores = [s for t, s in zip(task_types, scores, strict=True) if t == task_type and s is not None]
        if cfg["cosine_percentile"] is not None and task_scores:
            threshold = max(threshold, float(np.percentile(task_scores, cfg["cosine_percentile"])))
        thresholds[task_type] = threshold
    return thresholds


def copied_span(text: str, document: str, min_words: int) -> bool:
    """Whether ``text`` (at least ``min_words`` words) appears verbatim, up to case and punctuation, in
    ``document``: a query copied out of its document teaches nothing.

    >>> copied_span("Return the sorted list", "def f(x):\\n    # return the sorted list.\\n", 3)
    True
    >>> copied_span("sorted list", "return the sorted list", 3), copied_span("a new list", "the list", 2)
    (False, False)
    """
    words = normalized(text)
    return len(words.split()) >= min_words and f" {words} " in f" {normalized(document)} "


def word_ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = normalized(text).split()
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def repetitive(text: str, n: int = 3) -> bool:
    """Whether a text loops, as small generators do: a word n-gram occurs twice, or 8 or more words of
    which fewer than 60% are distinct.

    >>> repetitive("how to fix cancer and how to cure cancer and how to")
    True
    >>> repetitive("how to convert a python object to a json string")
    False
    """
    grams = word_ngrams(text, n)
    words = normalized(text).split()
    return len(set(grams)) < len(grams) or (len(words) >= 8 and len(set(words)) < 0.6 * len(words))


def echoes(text: str, prompt_grams: set[tuple[str, ...]], n: int) -> bool:
    """Whether ``text`` repeats ``n`` consecutive words of the prompt (its instructions or worked
    examples; ``prompt_grams`` = ``set(word_ngrams(prompt, n))``, made once per prompt) instead of
    writing about the document.

    >>> grams = set(word_ngrams("Write a short question that a nurse would type to find this text.", 5))
    >>> echoes("a nurse would type to find hypertension", grams, 5), echoes("hypertension drugs", grams, 5)
    (True, False)
    """
    return bool(set(word_ngrams(text, n)) & prompt_grams)


# Languages a small generator drifts into even when a run asks for none of them.
WIDESPREAD_LANGUAGES = {"en", "de", "fr", "es", "it", "pt", "nl", "ru", "zh", "ja"}


class LanguageChecker:
    """Language identification with py3langid (its model ships in the package), restricted to the
    languages a run can produce plus a few widespread ones, so short texts are not mistaken for
    unrelated languages while a drift into a common language is still caught (on 1,096 SciFact and
    CoSQA queries the widespread ones flagged no text the run's own languages passed)."""

    def __init__(self, languages: set[str]):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.identifier.set_languages(sorted(set(languages) | WIDESPREAD_LANGUAGES))

    def detect(self, text: str) -> tuple[str, float]:
        """(language code, probability)."""
        language, probability = self.identifier.classify(text)
        return language, float(probability)


def shingles(text: str, size: int = 5) -> set[str]:
    """Character ``size``-grams of the normalised text (the whole text when shorter).

    >>> sorted(shingles("Sort a dict", 8))
    ['ort a di', 'rt a dic', 'sort a d', 't a dict']
    """
    text = normalized(text)
    return {text[i : i + size] for i in range(max(1, len(text) - size + 1))}


def near_duplicate_of(
    texts: list[str | None], threshold: float, num_perm: int, seed: int
) -> list[int | None]:
    """For each text, the index of an earlier text whose estimated Jaccard similarity of character
    shingles (MinHash LSH, datasketch) is at least ``threshold``, or None. None entries are skipped.

    >>> texts = ["how to sort a dict by value", None, "how to sort a dict by values", "read a csv file"]
    >>> near_duplicate_of(texts, 0.7, 128, 1)
    [None, None, 0, None]
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    # The seed's permutations, made once: making them per text was most of the stage's time.
    template = MinHash(num_perm=num_perm, seed=seed)
    found: list[int | None] = []
    for i, text in enumerate(texts):
        if text is None:
            found.append(None)
            continue
        signature = MinHash(
            num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme
        )
        signature.update_batch([s.encode() for s in shingles(text)])
        matches = lsh.query(signature)
        found.append(min(int(m) for m in matches) if matches else None)
        if not matches:
            lsh.insert(str(i), signature)
    return found


def filter_decisions(rows: list[dict[str, Any]], cfg: dict[str, Any], seed: int) -> list[str | None]:
    """Per row, the rejection reason or None (kept).

    Each row has: query (the generated text), anchor, parse_error, cosine, threshold, copied, optionally
    repetitive and echo (checked when present), detected_language (or None when not checked or not
    confident), language (the one asked for) and
    doc_rank (rank of the source document for its anchor over the corpus; None: not in the top k;
    absent when the round trip is not checked). Duplicates are judged on the anchor among the rows
    that passed every other check; the first occurrence is kept.

    >>> base = {"parse_error": None, "cosine": 0.9, "threshold": 0.4, "copied": False,
    ...         "detected_language": None, "language": "en", "doc_rank": 0}
    >>> rows = [base | {"query": "sort a dict", "anchor": "sort a dict"},
    ...         base | {"query": "Sort a dict!", "anchor": "Sort a dict!"},
    ...         base | {"query": "x", "anchor": "x"},
    ...         base | {"query": "read a file now", "anchor": "read a file now", "cosine": 0.1},
    ...         base | {"query": None, "anchor": None, "parse_error": "unparsable: no JSON object"},
    ...         base | {"query": "lies ein Datei", "anchor": "lies ein Datei", "detected_language": "de"},
    ...         base | {"query": "open a socket", "anchor": "open a socket", "doc_rank": None}]
    >>> filter_decisions(rows, {"min_words": 2, "max_words": 10, "near_duplicate_threshold": None}, 0)
    [None, 'duplicate', 'too_short', 'low_cosine', 'unparsable', 'wrong_language', 'round_trip']
    """
    decisions: list[str | None] = []
    for row in rows:
        reason = None
        if row["parse_error"] is not None or row["query"] is None:
            reason = (row["parse_error"] or "empty").split(":")[0]
        else:
            reason = format_reason(row["query"], cfg["min_words"], cfg["max_words"])
        if reason is None and row.get("repetitive"):
            reason = "repetitive"
        if reason is None and row.get("echo"):
            reason = "prompt_echo"
        if reason is None and row["copied"]:
            reason = "copied"
        if reason is None and row["detected_language"] not in (None, row["language"]):
            reason = "wrong_language"
        if reason is None and (row["cosine"] is None or row["cosine"] < row["threshold"]):
            reason = "low_cosine"
        if reason is None and "doc_rank" in row and row["doc_rank"] is None:
            reason = "round_trip"
        decisions.append(reason)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if decisions[i] is None:
            key = normalized(row["anchor"])
            decisions[i] = "duplicate" if key in seen else None
            seen.add(key)
    if cfg["near_duplicate_threshold"] is not None:
        candidates = [row["anchor"] if decisions[i] is None else None for i, row in enumerate(rows)]
        for i, earlier in enumerate(
            near_duplicate_of(candidates, cfg["near_duplicate_threshold"], 128, seed)
        ):
            if earlier is not None:
                decisions[i] = "near_duplicate"
    return decisions


def best_candidates(
    keys: list[tuple[str, ...]],
    decisions: list[str | None],
    doc_ranks: list[int | None],
    cosines: list[float | None],
) -> list[str | None]:
    """Best-of-k: among the kept candidates of one configuration (same key), keep the one whose document
    ranks highest for it (round trip), then the closest; the others are rejected as ``not_best``.

    >>> best_candidates([("a",), ("a",), ("a",), ("b",)], [None, None, "low_cosine", None],
    ...                 [3, 0, 0, None], [0.9, 0.5, 0.1, 0.4])
    ['not_best', None, 'low_cosine', None]
    >>> best_candidates([("a",), ("a",)], [None, None], [None, None], [0.5, 0.7])
    ['not_best', None]
    """
    best: dict[tuple[str, ...], int] = {}
    for i, key in enumerate(keys):
        if decisions[i] is not None:
            continue
        score = (doc_ranks[i] if doc_ranks[i] is not None else float("inf"), -(cosines[i] or 0.0))
        j = best.get(key)
        if j is None or score < (
            doc_ranks[j] if doc_ranks[j] is not None else float("inf"),
            -(cosines[j] or 0.0),
        ):
            best[key] = i
    chosen = set(best.values())
    return [d if d is not None or i in chosen else "not_best" for i, d in enumerate(decisions)]
