"""Keeping pairs that pass the checks; every dropped pair keeps its reason and score.

The checks run in a fixed order and a row is rejected by the first it fails: parse errors, format
(empty, too_short, too_long), repetitive text, prompt echo, copied text, wrong language, low cosine,
round trip; then best of k keeps one survivor per configuration, and exact and near duplicates are
rejected among those best candidates only (deduplicating first would lose a document's pair to a
copy that best of k then drops).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from synthembed.io import CHUNK_ROWS
from synthembed.search import rank_of

WORD = re.compile(r"\w+")
# The per-row results a shard writes (scripts/filter_shard.py), by row of the queries file: the first
# check that needs no model the row fails, and the key its anchor is deduplicated on.
CHECK_SCHEMA = {
    "row": pl.Int64,
    "detected_language": pl.String,
    "text_reason": pl.String,
    "anchor_key": pl.Int64,
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


def form_reason(text: str | None, parse_error: str | None, cfg: dict[str, Any]) -> str | None:
    """Why a row has no well-formed text (its parse error, empty, too_short, too_long), or None: the
    rows without such a reason are the ones worth embedding.

    >>> cfg = {"min_words": 2, "max_words": 9}
    >>> form_reason("sort a dict", None, cfg), form_reason(None, "unparsable: no JSON object", cfg)
    (None, 'unparsable')
    >>> form_reason("x", None, cfg), form_reason(None, None, cfg)
    ('too_short', 'empty')
    """
    if parse_error is not None or text is None:
        return (parse_error or "empty").split(":")[0]
    return format_reason(text, cfg["min_words"], cfg["max_words"])


def content_reason(
    text: str,
    document: str,
    task_type: str,
    language: str,
    detected_language: str | None,
    prompt_grams: set[tuple[str, ...]],
    cfg: dict[str, Any],
) -> str | None:
    """The first check of a well-formed text that needs no model which it fails, or None: looping
    (repetitive), echoing its prompt (``prompt_grams``: the prompt's word n-grams of
    ``cfg['echo_min_words']`` words), copied from its document (not for classification, whose text is a
    label), written in another language than asked (``detected_language``: None when not checked or not
    confident); each off when its param is.

    >>> cfg = {"copied_min_words": 4, "repetition_check": True, "echo_min_words": 5}
    >>> content_reason("the cat sat on the mat", "so the cat sat on the mat today", "retrieval", "en", None,
    ...                set(), cfg)
    'copied'
    >>> content_reason("le chat dort", "the cat sleeps", "retrieval", "en", "fr", set(), cfg)
    'wrong_language'
    """
    if cfg["repetition_check"] and repetitive(text):
        return "repetitive"
    if cfg["echo_min_words"] is not None and echoes(text, prompt_grams, cfg["echo_min_words"]):
        return "prompt_echo"
    copied_min_words = cfg["copied_min_words"]
    if (
        copied_min_words is not None
        and task_type != "classification"
        and copied_span(text, document, copied_min_words)
    ):
        return "copied"
    if detected_language not in (None, language):
        return "wrong_language"
    return None


def anchor_key(anchor: str | None) -> int | None:
    """The key exact duplicates share: a 64-bit hash of the normalised anchor (a collision is a
    2**-64 chance), so deduplication keeps 8 bytes a row instead of the text.

    >>> anchor_key("Sort a dict!") == anchor_key("sort a   dict"), anchor_key(None)
    (True, None)
    """
    if anchor is None:
        return None
    return int.from_bytes(
        hashlib.blake2b(normalized(anchor).encode(), digest_size=8).digest(), "big", signed=True
    )


def anchor_and_positive(task_type: str, generated: str, document: str) -> tuple[str, str]:
    """The training pair of a row: generated text -> document, except classification, where the
    document is the anchor and its label text ("label: description") the positive.

    >>> anchor_and_positive("retrieval", "q", "doc"), anchor_and_positive("classification", "l: d", "doc")
    (('q', 'doc'), ('doc', 'l: d'))
    """
    return (document, generated) if task_type == "classification" else (generated, document)


def text_checks(
    part: pl.DataFrame,
    documents: dict[str, str],
    cfg: dict[str, Any],
    echo_grams: dict[str, set[tuple[str, ...]]],
    detect: Callable[[str], tuple[str, float]] | None = None,
) -> pl.DataFrame:
    """The checks of the rows of ``part`` (row, doc_id, task_type, language, template, query,
    parse_error, echo_text) that need no model, as ``CHECK_SCHEMA`` rows: the language ``detect`` finds
    with at least ``cfg['language_min_probability']`` (None when not checked or not confident), the
    first reason to reject the text (``form_reason``, then ``content_reason``) or None, and the key
    exact duplicates share. ``documents`` maps doc_id to passage; ``echo_grams`` maps a template to its
    prompt's word n-grams, which a row's own ``echo_text`` (the worked answers it was shown) replaces.

    >>> cfg = {"min_words": 2, "max_words": 9, "repetition_check": True, "echo_min_words": 3,
    ...        "copied_min_words": 4, "language_min_probability": 0.9}
    >>> part = pl.DataFrame({"row": [0, 1, 2], "doc_id": ["d"] * 3, "task_type": ["retrieval"] * 3,
    ...     "language": ["en"] * 3, "template": ["retrieval"] * 3,
    ...     "query": ["sort a dict by value", "write a search query now", "x"],
    ...     "parse_error": [None, None, None], "echo_text": [None, "Write a search query", None]})
    >>> documents = {"d": "def f(d): return sorted(d.items())"}
    >>> checks = text_checks(part, documents, cfg, {}, lambda text: ("en", 1.0))
    >>> checks["text_reason"].to_list(), checks["detected_language"].to_list()
    ([None, 'prompt_echo', 'too_short'], ['en', 'en', None])
    """
    checks = []
    for row, doc_id, task_type, language, template, text, parse_error, echo in part.select(
        "row", "doc_id", "task_type", "language", "template", "query", "parse_error", "echo_text"
    ).iter_rows():
        reason, detected, key = form_reason(text, parse_error, cfg), None, None
        if reason is None:
            if detect is not None:
                language_found, probability = detect(text)
                detected = language_found if probability >= cfg["language_min_probability"] else None
            grams = echo_grams.get(template, set())
            if echo is not None and cfg["echo_min_words"] is not None:
                grams = set(word_ngrams(echo, cfg["echo_min_words"]))
            reason = content_reason(text, documents[doc_id], task_type, language, detected, grams, cfg)
            key = anchor_key(anchor_and_positive(task_type, text, documents[doc_id])[0])
        checks.append({"row": row, "detected_language": detected, "text_reason": reason, "anchor_key": key})
    return pl.DataFrame(checks, schema=CHECK_SCHEMA)


def gathered_scores(
    parts: list[dict[str, np.ndarray]],
    doc_index: np.ndarray,
    n_docs: int,
    round_trip_rows: np.ndarray,
    round_trip_top_k: int | None,
    search_cfg: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Per generated row, the cosine of its text and its document, and the rank (0 = first) of its
    document among the ``round_trip_top_k`` nearest over the whole corpus, from the shards' vectors.

    ``parts`` are the shards' arrays: ``query_rows`` / ``query_vectors`` (the rows worth embedding) and
    ``doc_rows`` / ``doc_vectors`` (rows of the docs file, of ``n_docs``; all of them when the round
    trip is on); ``doc_index`` gives each row's document row, ``round_trip_rows`` which rows are searched
    (not classification). A row without a vector has a NaN cosine; a row not searched, or whose
    document is not among the nearest, the rank -1.

    >>> docs = np.eye(3, dtype=np.float32)
    >>> parts = [{"query_rows": np.array([2, 0]), "query_vectors": np.array([[0.6, 0.8, 0], [0, 0.8, 0.6]]),
    ...           "doc_rows": np.arange(3), "doc_vectors": docs}]
    >>> cosines, ranks = gathered_scores(parts, np.array([1, 0, 0]), 3, np.array([True, True, True]), 2,
    ...                                  {"method": "exact"})
    >>> np.round(cosines, 2).tolist(), ranks.tolist()
    ([0.8, nan, 0.6], [0, -1, 1])
    """
    n_rows = len(doc_index)
    cosines = np.full(n_rows, np.nan)
    doc_ranks = np.full(n_rows, -1, dtype=np.int64)
    query_rows = np.concatenate([part["query_rows"] for part in parts])
    if not len(query_rows):
        return cosines, doc_ranks
    order = np.argsort(query_rows)
    scored_rows = query_rows[order]
    text_vectors = np.concatenate([part["query_vectors"] for part in parts if len(part["query_rows"])])[order]
    doc_vectors = np.zeros((n_docs, text_vectors.shape[1]), dtype=np.float32)
    for part in parts:
        if len(part["doc_rows"]):
            doc_vectors[part["doc_rows"]] = part["doc_vectors"]
    cosines[scored_rows] = (text_vectors * doc_vectors[doc_index[scored_rows]]).sum(axis=1)
    if round_trip_top_k is not None:
        searched = np.flatnonzero(round_trip_rows[scored_rows])
        ranks = rank_of(
            text_vectors[searched],
            doc_vectors,
            doc_index[scored_rows[searched]],
            round_trip_top_k,
            search_cfg,
        )
        doc_ranks[scored_rows[searched]] = [-1 if rank is None else rank for rank in ranks]
    return cosines, doc_ranks


def cosine_thresholds(scores: pl.DataFrame, cfg: dict[str, Any]) -> dict[str, float]:
    """The cosine threshold of each task type of ``scores`` (columns task_type, cosine, text_reason; null
    cosines are rows not scored): ``min_cosine`` (one number, one per task type, or null) and, when
    ``cosine_percentile`` is set, that percentile of the scores of the task type's rows that passed the
    text checks (null text_reason) in this run — each embedding model has its own scale, and a copied or
    looping text would pull the percentile towards its own scores. The stricter of the two applies.

    >>> scores = pl.DataFrame({"task_type": ["sts"] * 5, "cosine": [0.1, 0.2, 0.3, 0.4, 0.99],
    ...                        "text_reason": [None, None, None, None, "copied"]})
    >>> cosine_thresholds(scores, {"min_cosine": 0.15, "cosine_percentile": 50})
    {'sts': 0.25}
    >>> scores = pl.DataFrame({"task_type": ["sts", "bitext"], "cosine": [0.5, 0.1],
    ...                        "text_reason": [None, None]})
    >>> cosine_thresholds(scores, {"min_cosine": {"sts": 0.4}, "cosine_percentile": None})
    {'sts': 0.4, 'bitext': -1.0}
    """
    thresholds = {}
    for task_type in scores["task_type"].unique(maintain_order=True).to_list():
        absolute = cfg["min_cosine"]
        if isinstance(absolute, dict):
            absolute = absolute.get(task_type)
        threshold = -1.0 if absolute is None else absolute
        passed = (pl.col("task_type") == task_type) & pl.col("text_reason").is_null()
        task_scores = scores.filter(passed)["cosine"].drop_nulls().to_numpy()
        if cfg["cosine_percentile"] is not None and len(task_scores):
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


class NearDuplicates:
    """Near-duplicate detection with MinHash LSH over character shingles (datasketch's signatures and
    band layout for ``threshold``), keeping only one 8-byte key per band of each text added, in a
    sorted array: about 8 bytes x bands a text, where datasketch's index keeps kilobytes. A text is a
    near duplicate when it shares a band with an earlier text that was not one (what
    ``MinHashLSH.query`` then ``insert`` decide, up to 64-bit key collisions).

    >>> index = NearDuplicates(0.7, 128, 1)
    >>> index.add(["how to sort a dict by value", "read a csv file"])
    [False, False]
    >>> index.add(["how to sort a dict by values", "read a csv file row by row"])
    [True, False]
    """

    def __init__(self, threshold: float, num_perm: int, seed: int):
        from datasketch import MinHash, MinHashLSH

        layout = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands, self.band_width = layout.b, layout.r
        # The seed's permutations, made once: making them per text was most of the stage's time.
        self.template = MinHash(num_perm=num_perm, seed=seed)
        self.seen = np.zeros(0, dtype=np.uint64)

    def band_keys(self, text: str) -> list[int]:
        from datasketch import MinHash

        signature = MinHash(
            num_perm=len(self.template),
            seed=self.template.seed,
            permutations=self.template.permutations,
            scheme=self.template.scheme,
        )
        signature.update_batch([s.encode() for s in shingles(text)])
        values = signature.hashvalues
        return [
            int.from_bytes(
                hashlib.blake2b(
                    bytes([band]) + values[band * self.band_width : (band + 1) * self.band_width].tobytes(),
                    digest_size=8,
                ).digest(),
                "big",
            )
            for band in range(self.bands)
        ]

    def add(self, texts: list[str]) -> list[bool]:
        """Whether each text is a near duplicate of an earlier one, this call's included; the texts
        that are not become the earlier ones of later texts and calls."""
        keys = np.array([self.band_keys(t) for t in texts], dtype=np.uint64).reshape(len(texts), self.bands)
        positions = np.searchsorted(self.seen, keys).clip(max=max(len(self.seen) - 1, 0))
        seen_before = (
            (self.seen[positions] == keys).any(axis=1) if len(self.seen) else np.zeros(len(texts), bool)
        )
        added: set[int] = set()
        found = []
        for row, earlier in zip(keys.tolist(), seen_before.tolist(), strict=True):
            duplicate = earlier or not added.isdisjoint(row)
            if not duplicate:
                added.update(row)
            found.append(duplicate)
        self.seen = np.union1d(self.seen, np.fromiter(added, dtype=np.uint64, count=len(added)))
        return found


def filter_decisions(
    rows: pl.DataFrame,
    cfg: dict[str, Any],
    seed: int,
    anchor_texts: Callable[[pl.DataFrame], list[str]],
    keys: list[str],
    chunk_rows: int = CHUNK_ROWS,
) -> pl.Series:
    """Per row, the rejection reason or null (kept), decided column by column.

    ``rows`` has: text_reason (the shard's checks: parse error, format, repetitive, prompt echo, copied,
    wrong language), cosine and threshold, round_trip (whether the row's document must come back for
    it) and doc_rank (its rank over the corpus; null: not in the top k), anchor_key (``anchor_key`` of
    the anchor) and the ``keys`` columns of its configuration. Best of k (``best_candidates``) then
    keeps one row per configuration among those that passed every check. Duplicates are judged on the
    anchor among those best rows only, the first occurrence kept; near duplicates
    (``cfg['near_duplicate_threshold']``) then among the rest, on the texts ``anchor_texts`` returns for
    a slice of ``rows`` (read ``chunk_rows`` at a time).

    >>> rows = pl.DataFrame({
    ...     "doc_id": ["a", "b", "c", "d", "e"],
    ...     "anchor": ["sort a dict", "Sort a dict!", None, "read a file now", "open a socket"],
    ...     "text_reason": [None, None, "too_short", None, None],
    ...     "cosine": [0.9, 0.9, None, 0.1, 0.9], "threshold": [0.4] * 5,
    ...     "round_trip": [True] * 5, "doc_rank": [0, 0, None, 0, None]})
    >>> keys = pl.Series("anchor_key", [anchor_key(a) for a in rows["anchor"]], dtype=pl.Int64)
    >>> rows = rows.with_columns(keys)
    >>> cfg = {"near_duplicate_threshold": None}
    >>> filter_decisions(rows, cfg, 0, lambda part: part["anchor"].to_list(), ["doc_id"]).to_list()
    [None, 'duplicate', 'too_short', 'low_cosine', 'round_trip']

    The copy in document b stays when document a's copy loses best of k to a closer candidate:

    >>> rows = pl.DataFrame({"doc_id": ["a", "b", "a"],
    ...     "anchor": ["sort a dict", "sort a dict", "order by value"], "text_reason": [None] * 3,
    ...     "cosine": [0.5, 0.6, 0.9], "threshold": [0.4] * 3,
    ...     "round_trip": [False] * 3, "doc_rank": [None] * 3}, schema_overrides={"doc_rank": pl.Int64})
    >>> rows = rows.with_columns(pl.Series("anchor_key", [anchor_key(a) for a in rows["anchor"]]))
    >>> filter_decisions(rows, cfg, 0, lambda part: part["anchor"].to_list(), ["doc_id"]).to_list()
    ['not_best', None, None]
    """
    checked = rows.select(
        *keys,
        "doc_rank",
        "cosine",
        pl.when(pl.col("text_reason").is_not_null())
        .then(pl.col("text_reason"))
        .when(pl.col("cosine").is_null() | (pl.col("cosine") < pl.col("threshold")))
        .then(pl.lit("low_cosine"))
        .when(pl.col("round_trip") & pl.col("doc_rank").is_null())
        .then(pl.lit("round_trip"))
        .alias("reason"),
    )
    reasons = best_candidates(checked, keys)
    passed = rows.select("anchor_key").with_row_index("_row").filter(reasons.is_null())
    duplicates = passed.filter(~pl.col("anchor_key").is_first_distinct())["_row"]
    reasons = reasons.scatter(duplicates, "duplicate")
    if cfg["near_duplicate_threshold"] is not None:
        index = NearDuplicates(cfg["near_duplicate_threshold"], 128, seed)
        remaining = passed.filter(pl.col("anchor_key").is_first_distinct())["_row"]
        for start in range(0, len(remaining), chunk_rows):
            positions = remaining.slice(start, chunk_rows)
            found = index.add(anchor_texts(rows.select(pl.all().gather(positions))))
            reasons = reasons.scatter(positions.filter(pl.Series(found, dtype=pl.Boolean)), "near_duplicate")
    return reasons


def best_candidates(rows: pl.DataFrame, keys: list[str]) -> pl.Series:
    """Best-of-k: among the candidates that passed the checks (null reason) of one configuration (same
    ``keys``), keep the one whose document ranks highest for it (round trip), then the closest, then the
    first; the others are rejected as ``not_best``. ``rows`` has the key columns, reason, doc_rank and
    cosine.

    >>> rows = pl.DataFrame({"key": ["a", "a", "a", "b"], "reason": [None, None, "low_cosine", None],
    ...                      "doc_rank": [3, 0, 0, None], "cosine": [0.9, 0.5, 0.1, 0.4]})
    >>> best_candidates(rows, ["key"]).to_list()
    ['not_best', None, 'low_cosine', None]
    >>> rows = pl.DataFrame({"key": ["a", "a"], "reason": [None, None], "doc_rank": [None, None],
    ...                      "cosine": [0.5, 0.7]}, schema_overrides={"doc_rank": pl.Int64})
    >>> best_candidates(rows, ["key"]).to_list()
    ['not_best', None]
    """
    numbered = rows.with_row_index("_row")
    order = [pl.col("doc_rank").fill_null(np.iinfo(np.int64).max), -pl.col("cosine").fill_null(0.0), "_row"]
    best = (
        numbered.filter(pl.col("reason").is_null())
        .group_by(keys)
        .agg(pl.col("_row").sort_by(order).first())["_row"]
    )
    return numbered.select(
        pl.when(pl.col("reason").is_null() & ~pl.col("_row").is_in(best.implode()))
        .then(pl.lit("not_best"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )["reason"]
