"""Structural pseudo-queries: pairs a corpus states about itself, with no generator at all.

A title and the text under it, a Markdown heading and its section, a function's docstring summary and
its code with the docstring removed, a passage's first sentence and the rest, its last sentence (an
abstract's conclusion) and the rest, a finding it reports ("we show that X": X) and the rest: each is
a short text that a searcher might type, paired with the document that answers it. The query part is
always removed from the positive, so the pair cannot be solved by copying.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import numpy as np
import polars as pl

from synthembed.corpus import SENTENCE_END, first_sentence, function_without_docstring, text_blocks
from synthembed.filtering import normalized
from synthembed.pages import ATX_HEADING
from synthembed.search import top_k

# a line of Markdown structure, not running prose: a heading, a code fence, a bullet, a table row, HTML
# or a comment, a quote, a setext heading's underline ("1. " is not one: abstracts number their points)
MARKUP_LINE = re.compile(r"\s*(?:#{1,6}\s|```|~~~|[-*+]\s|\||<|>|[=-]{3,}\s*$)")
# a structured abstract's section label before its sentence: "CONCLUSIONS AND RELEVANCE These ..."
SECTION_LABEL = re.compile(r"^(?:[A-Z][A-Z/&,]+\s+)+(?=[A-Z][a-z])")
# "These results suggest that X." / "We found that X.": what follows a reporting verb and "that" is a
# finding, stated as a scientific claim is; the first such verb of the sentence starts it.
REPORTED_FINDING = re.compile(
    r"\b(?:suggest(?:s|ed)?|show(?:s|ed|n)?|indicat(?:e|es|ed)|demonstrat(?:e|es|ed)|reveal(?:s|ed)?"
    r"|conclud(?:e|es|ed)|finds?|found|confirm(?:s|ed)?|support(?:s|ed)?|establish(?:es|ed)?"
    r"|impl(?:y|ies|ied))\s+that\s+(?P<finding>\S.*)$",
    re.IGNORECASE,
)
PAIR_SCHEMA = {
    "doc_id": pl.String,
    "kind": pl.String,
    "query": pl.String,
    "positive": pl.String,
    "lang": pl.String,
}


def words(text: str) -> int:
    return len(text.split())


def title_pair(title: str | None, text: str) -> tuple[str, str] | None:
    """(title, body) when the document has a title; a Markdown heading in the body that repeats the
    title (a ``textdir`` file's title is its first heading) is cut from it.

    >>> title_pair("Aspirin lowers fever", "We measured ...")
    ('Aspirin lowers fever', 'We measured ...')
    >>> title_pair("Install", "# Install\\n\\nRun pip install x")
    ('Install', 'Run pip install x')
    >>> title_pair("", "body") is None, title_pair("Install", "# Install") is None
    (True, True)
    """
    if not (title and title.strip()):
        return None
    title = title.strip()

    def repeats_title(line: str) -> bool:
        return bool(
            (heading := ATX_HEADING.match(line)) and normalized(heading.group(1)) == normalized(title)
        )

    lines = text.splitlines()
    if any(repeats_title(line) for line in lines):
        text = "\n".join(line for line in lines if not repeats_title(line)).strip()
    return (title, text) if text else None


def heading_pairs(text: str) -> list[tuple[str, str]]:
    """(heading, section text) for every Markdown heading with text under it; a ``# `` line inside a
    fenced code block is a comment of the code, not a heading.

    >>> heading_pairs("# Install\\npip install x\\n## Use\\nimport x\\n## Empty\\n")
    [('Install', 'pip install x'), ('Use', 'import x')]
    >>> heading_pairs("# Setup\\n```sh\\n# fetch it\\ngit pull\\n```")
    [('Setup', '```sh\\n# fetch it\\ngit pull\\n```')]
    """
    pairs, heading, section = [], None, []
    for block in [*text_blocks(text), "# end"]:
        first_line, _, rest = block.partition("\n")
        if match := ATX_HEADING.match(first_line):
            if heading and (body := "\n\n".join(section).strip()):
                pairs.append((heading, body))
            heading, section = match.group(1), [rest]
        else:
            section.append(block)
    return pairs


def is_prose(text: str) -> bool:
    """Whether a text is running prose: no line of it is Markdown structure. The sentence kinds read a
    passage as sentences; in a Markdown page a "sentence" would run through headings, lists and code.

    >>> is_prose("Cells divide. Then they grow."), is_prose("## Setup\\nRun it. Then wait.")
    (True, False)
    >>> is_prose("Steps follow.\\n\\n- fetch it. Then build.")
    False
    """
    return not any(MARKUP_LINE.match(line) for line in text.splitlines())


def docstring_pair(code: str) -> tuple[str, str] | None:
    """(first sentence of the docstring, the code without its docstring) for a Python function.

    >>> docstring_pair("def add(a, b):\\n    '''Add two numbers.\\n\\n    Details.'''\\n    return a + b")
    ('Add two numbers.', 'def add(a, b):\\n    return a + b')
    >>> docstring_pair("def f():\\n    return 1") is None
    True
    """
    source = textwrap.dedent(code)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return None
    node = functions[0]
    docstring = ast.get_docstring(node, clean=False)
    if not docstring or len(node.body) < 2:
        return None
    return first_sentence(docstring), function_without_docstring(source.splitlines(), node)


def first_sentence_pair(text: str) -> tuple[str, str] | None:
    """(first sentence, the rest) of a prose passage of at least two sentences.

    >>> first_sentence_pair("Cells divide. Then they grow again.")
    ('Cells divide.', 'Then they grow again.')
    >>> first_sentence_pair("One sentence only") is None
    True
    """
    parts = SENTENCE_END.split(" ".join(text.split()), maxsplit=1)
    if len(parts) < 2 or not parts[1].strip():
        return None
    return parts[0].strip(), parts[1].strip()


def last_sentence_pair(text: str) -> tuple[str, str] | None:
    """(last sentence, the rest) of a prose passage of at least three sentences, the sentence without a
    section label. An abstract's last sentence states its conclusion: the kind of claim a reader
    searches for evidence of.

    >>> last_sentence_pair("Cells divide. They grow. CONCLUSIONS Growth follows division.")
    ('Growth follows division.', 'Cells divide. They grow.')
    >>> last_sentence_pair("Cells divide. They grow.") is None
    True
    """
    sentences = SENTENCE_END.split(" ".join(text.split()))
    if len(sentences) < 3:
        return None
    return SECTION_LABEL.sub("", sentences[-1]).strip(), " ".join(sentences[:-1])


def finding_pairs(text: str) -> list[tuple[str, str]]:
    """(finding, the rest) for each sentence of a prose passage that reports a finding: the clause after
    "we show that", "these results suggest that" and the like, its first word capitalised when it is a
    plain lower-case word, paired with the passage without that sentence. Scientific claims are such
    findings, stated alone.

    >>> finding_pairs("Cells divide. These results suggest that growth follows division. Work is needed.")
    [('Growth follows division.', 'Cells divide. Work is needed.')]
    >>> finding_pairs("We found that miR-205 silences MED1. It is a suppressor.")[0][0]
    'miR-205 silences MED1.'
    >>> finding_pairs("We show results. That is all.")
    []
    """
    sentences = SENTENCE_END.split(" ".join(text.split()))
    if len(sentences) < 2:
        return []
    pairs = []
    for i, sentence in enumerate(sentences):
        if match := REPORTED_FINDING.search(sentence):
            finding = match["finding"]
            first = finding.split(maxsplit=1)[0]
            if first.isalpha() and first.islower():
                finding = finding[0].upper() + finding[1:]
            pairs.append((finding, " ".join(sentences[:i] + sentences[i + 1 :])))
    return pairs


def document_pairs(doc: dict[str, Any], kinds: list[str]) -> list[tuple[str, str, str]]:
    """(kind, query, positive) of one document, for the kinds asked for that apply to it."""
    found: list[tuple[str, str, str]] = []
    prose = doc["domain"] != "code" and is_prose(doc["text"])
    if "title" in kinds and (pair := title_pair(doc["title"], doc["text"])):
        found.append(("title", *pair))
    if "heading" in kinds and doc["domain"] != "code":  # in code, "# ..." is a comment
        found += [("heading", h, s) for h, s in heading_pairs(doc["text"])]
    if "docstring" in kinds and doc["domain"] == "code" and (pair := docstring_pair(doc["text"])):
        found.append(("docstring", *pair))
    if "first_sentence" in kinds and prose and (pair := first_sentence_pair(doc["text"])):
        found.append(("first_sentence", *pair))
    if "last_sentence" in kinds and prose and (pair := last_sentence_pair(doc["text"])):
        found.append(("last_sentence", *pair))
    if "finding" in kinds and prose:
        found += [("finding", f, rest) for f, rest in finding_pairs(doc["text"])]
    return found


def structural_pairs(
    docs: pl.DataFrame, cfg: dict[str, Any], seed: int
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The structural pairs of the corpus: queries of ``min_words``..``max_words`` words, positives of at
    least ``min_positive_words``, each query once (a repeated title or summary would pair one text with
    several documents), a seeded sample of at most ``max_pairs``. Returns the pairs (doc_id, kind,
    query, positive, lang) and the counts: ``read`` (pairs found), ``kept``, ``rejected`` by reason and
    ``kept_by_kind``."""
    rows, rejected = [], {"query_length": 0, "short_positive": 0, "duplicate": 0, "over_max_pairs": 0}
    seen: set[str] = set()
    for doc in docs.iter_rows(named=True):
        for kind, query, positive in document_pairs(doc, cfg["kinds"]):
            if not cfg["min_words"] <= words(query) <= cfg["max_words"]:
                rejected["query_length"] += 1
            elif words(positive) < cfg["min_positive_words"]:
                rejected["short_positive"] += 1
            elif normalized(query) in seen:
                rejected["duplicate"] += 1
            else:
                seen.add(normalized(query))
                rows.append(
                    {
                        "doc_id": doc["doc_id"],
                        "kind": kind,
                        "query": query,
                        "positive": positive,
                        "lang": doc["lang"],
                    }
                )
    found = len(rows) + sum(rejected.values())
    pairs = pl.DataFrame(rows, schema=PAIR_SCHEMA)
    if pairs.height > cfg["max_pairs"]:
        rejected["over_max_pairs"] = pairs.height - cfg["max_pairs"]
        pairs = pairs.sample(n=cfg["max_pairs"], seed=seed).sort("doc_id", "kind", "query")
    by_kind = dict(pairs.group_by("kind").len().sort("kind").iter_rows()) if pairs.height else {}
    return pairs, {"read": found, "kept": pairs.height, "rejected": rejected, "kept_by_kind": by_kind}


KIND_PREFERENCE = ("title", "docstring", "heading", "first_sentence", "last_sentence", "finding")


def example_pool(pairs: pl.DataFrame, size: int, seed: int) -> pl.DataFrame:
    """Candidate worked examples: one structural pair per document (its title if it has one, then its
    docstring, heading, first sentence, last sentence, finding: ``KIND_PREFERENCE``), a seeded sample
    of at most ``size``.

    >>> pairs = pl.DataFrame({"doc_id": ["a", "a", "b"], "kind": ["first_sentence", "title", "heading"],
    ...                       "query": ["s", "t", "h"], "positive": ["x", "y", "z"], "lang": ["en"] * 3})
    >>> example_pool(pairs, 10, 0)["query"].to_list()
    ['t', 'h']
    """
    rank = pl.col("kind").replace_strict(KIND_PREFERENCE, list(range(len(KIND_PREFERENCE))))
    pool = pairs.sort("doc_id", rank).unique("doc_id", keep="first", maintain_order=True)
    return pool.sample(n=size, seed=seed).sort("doc_id") if pool.height > size else pool


def nearest_examples(
    row_vectors: np.ndarray, row_doc_ids: list[str], pool_vectors: np.ndarray, pool_doc_ids: list[str], k: int
) -> list[list[int]]:
    """Per row, the pool indices of its ``k`` most similar documents (vectors normalised), never the
    row's own document, most similar last (nearest the request, as the last worked example). The pool
    holds each document once, so k + 1 neighbours always leave k others.

    >>> rows = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> pool = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    >>> nearest_examples(rows, ["a"], pool, ["a", "b", "c"], 2)
    [[2, 1]]
    """
    _, found = top_k(
        row_vectors.astype(np.float32), pool_vectors.astype(np.float32), min(k + 1, len(pool_doc_ids))
    )
    chosen = []
    for own, row in zip(row_doc_ids, found, strict=True):
        others = [int(j) for j in row if j >= 0 and pool_doc_ids[j] != own][:k]
        chosen.append(others[::-1])
    return chosen
