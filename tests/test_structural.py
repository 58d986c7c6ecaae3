"""Structural pseudo-queries: what each kind takes from a document, and their share in the balanced set."""

from pathlib import Path

import polars as pl
import pytest

from synthembed.balance import balance_plan
from synthembed.corpus import Corpus, clean_documents, read_corpus
from synthembed.mine import DocumentMemo
from synthembed.structural import structural_pairs

CFG = {"kinds": ["title", "heading", "docstring", "first_sentence"], "min_words": 2, "max_words": 12}
CFG |= {"min_positive_words": 3, "max_pairs": 100}
CODE = '''def mean(values):
    """Return the arithmetic mean of a list of numbers.

    Raises ValueError for an empty list.
    """
# an empty list has no mean
    if not values:
        raise ValueError("empty")
    return sum(values) / len(values)
'''
DOCS = pl.DataFrame(
    [
        {
            "doc_id": "paper",
            "title": "Aspirin lowers fever in adults",
            "domain": "general",
            "lang": "en",
            "text": "Fever is common. We gave aspirin to 200 adults and measured their temperature hourly.",
        },
        {
            "doc_id": "guide",
            "title": "",
            "domain": "general",
            "lang": "en",
            "text": "# Install the tool\npip install tool and check the version\n# Usage notes\nrun it\n",
        },
        {"doc_id": "func", "title": "", "domain": "code", "lang": "en", "text": CODE},
        {
            "doc_id": "copy",
            "title": "Aspirin lowers fever in adults",
            "domain": "general",
            "lang": "en",
            "text": "A second abstract with the same title, long enough to pair.",
        },
    ]
)


def test_each_kind_takes_the_query_out_of_its_positive():
    pairs, stats = structural_pairs(DOCS, CFG, seed=0)
    got = {(r["doc_id"], r["kind"]): (r["query"], r["positive"]) for r in pairs.iter_rows(named=True)}
    assert got[("paper", "title")] == ("Aspirin lowers fever in adults", DOCS["text"][0])
    assert got[("paper", "first_sentence")] == (
        "Fever is common.",
        "We gave aspirin to 200 adults and measured their temperature hourly.",
    )
    assert got[("guide", "heading")] == ("Install the tool", "pip install tool and check the version")
    query, code = got[("func", "docstring")]
    assert query == "Return the arithmetic mean of a list of numbers."
    assert "arithmetic" not in code and code.startswith("def mean(values):") and "return sum" in code
    # "Usage notes" has a one-word section; the second paper repeats a title; code has no first sentence,
    # and its "# ..." comment is not a heading.
    assert ("func", "first_sentence") not in got and ("copy", "title") not in got
    assert ("func", "heading") not in got
    assert stats["rejected"] == {"query_length": 0, "short_positive": 1, "duplicate": 1, "over_max_pairs": 0}
    assert stats["read"] == stats["kept"] + sum(stats["rejected"].values())


def textdir_corpus(folder: Path, split_words: int | None = None) -> Corpus:
    """A folder of pages, read and cleaned as the docs stage does, every text kept."""
    return clean_documents(
        read_corpus("textdir", str(folder)),
        min_chars=1,
        on_bad_row="error",
        lang="en",
        domain=None,
        split_words=split_words,
    )


def test_a_markdown_files_title_heading_is_not_left_in_its_positive(tmp_path):
    (tmp_path / "notes.md").write_text("# Release notes\n\nThe tool now reads Markdown and writes Parquet.\n")
    corpus = textdir_corpus(tmp_path)
    pairs, stats = structural_pairs(pl.DataFrame(list(corpus.docs)), CFG, seed=0)
    assert pairs.select("kind", "query", "positive").rows() == [
        ("title", "Release notes", "The tool now reads Markdown and writes Parquet.")
    ]
    assert stats["rejected"]["duplicate"] == 1  # the heading's pair asks what the title's does


def test_a_readme_with_underlined_headings_is_titled_and_paired_by_them(tmp_path):
    readme = (
        "PyYAML\n======\n\nA YAML parser and emitter for Python.\n\n"
        "Installation\n------------\n\nRun pip install pyyaml in a virtual environment.\n\n"
        "```yaml\nkey: value\n---\n```\n\n---\n\nReleased under the MIT license terms.\n"
    )
    (tmp_path / "README.md").write_text(readme)
    corpus = textdir_corpus(tmp_path)
    docs = pl.DataFrame(list(corpus.docs))
    # rendered, the underlined lines are an h1 and an h2; the YAML document marker and the rule are not
    body = (
        "A YAML parser and emitter for Python.\n\n## Installation\n\n"
        "Run pip install pyyaml in a virtual environment.\n\n"
        "```yaml\nkey: value\n---\n```\n\n---\n\nReleased under the MIT license terms."
    )
    assert docs.select("title", "text").rows() == [("PyYAML", f"# PyYAML\n\n{body}\n")]
    pairs, _ = structural_pairs(docs, CFG | {"kinds": ["title", "heading"], "min_words": 1}, seed=0)
    assert pairs.select("kind", "query", "positive").rows() == [
        ("title", "PyYAML", body),
        (
            "heading",
            "Installation",
            "Run pip install pyyaml in a virtual environment.\n\n```yaml\nkey: value\n---\n```\n\n---\n\n"
            "Released under the MIT license terms.",
        ),
    ]


def test_a_sphinx_page_is_titled_split_and_paired_by_its_sections_without_its_comments(tmp_path):
    page = (
        ".. Distributed under the BSD 3-Clause License.\n   See the accompanying Copyright.txt.\n\n"
        "=============\nadd_library\n=============\n\n"
        "Add a library target built from the listed source files.\n\n"
        "Normal Libraries\n----------------\n\n.. code-block:: cmake\n\n  add_library(<name> STATIC)\n\n"
        "Adds a library target called ``<name>`` to be built from its sources.\n\n"
        "Object Libraries\n----------------\n\nAn object library compiles sources without archiving them.\n"
    )
    (tmp_path / "add_library.rst").write_text(page)
    corpus = textdir_corpus(tmp_path)
    docs = pl.DataFrame(list(corpus.docs))
    normal = (
        ".. code-block:: cmake\n\n  add_library(<name> STATIC)\n\n"
        "Adds a library target called ``<name>`` to be built from its sources."
    )
    assert docs.select("title", "text").rows() == [
        (
            "add_library",
            "\n# add_library\n\nAdd a library target built from the listed source files.\n\n"
            f"## Normal Libraries\n\n{normal}\n\n"
            "## Object Libraries\n\nAn object library compiles sources without archiving them.\n",
        )
    ]
    pairs, _ = structural_pairs(
        docs, CFG | {"kinds": ["heading"], "min_words": 1, "min_positive_words": 5}, seed=0
    )
    assert sorted(pairs.select("query", "positive").rows()) == [
        ("Normal Libraries", normal),
        ("Object Libraries", "An object library compiles sources without archiving them."),
        ("add_library", "Add a library target built from the listed source files."),
    ]
    parts = textdir_corpus(tmp_path, split_words=20)
    assert [d["text"].split("\n")[0] for d in parts.docs] == [
        "# add_library",
        "## Normal Libraries",
        "## Object Libraries",
    ]


def test_a_markdown_page_pairs_its_headings_not_its_code_comments_nor_sentences_across_its_markup():
    page = (
        "# Build from source\n\nFetch the sources first. Then build them.\n\n"
        "```sh\n# fetch the sources\ngit pull origin main\n```\n\n- run the tests. Then ship it.\n"
    )
    notes = "Fetch the sources first, with git.\n\nThen build them with make and run the tests."
    docs = pl.DataFrame(
        [
            {"doc_id": doc_id, "title": "", "domain": "general", "lang": "en", "text": text}
            for doc_id, text in {"page": page, "notes": notes}.items()
        ]
    )
    kinds = ["heading", "first_sentence", "last_sentence", "finding"]
    pairs, _ = structural_pairs(docs, CFG | {"kinds": kinds}, seed=0)
    # The shell comment stays in its section; sentences are read only where the text is prose.
    assert sorted(pairs.select("doc_id", "kind", "query", "positive").rows()) == [
        (
            "notes",
            "first_sentence",
            "Fetch the sources first, with git.",
            "Then build them with make and run the tests.",
        ),
        ("page", "heading", "Build from source", page.removeprefix("# Build from source\n\n").strip()),
    ]


def untitled_docs(abstract: str) -> pl.DataFrame:
    """An abstract, a two-sentence text and a function, none with a title."""
    texts = {"paper": ("general", abstract), "short": ("general", "Two. Sentences."), "func": ("code", CODE)}
    return pl.DataFrame(
        [
            {"doc_id": doc_id, "title": "", "domain": domain, "lang": "en", "text": text}
            for doc_id, (domain, text) in texts.items()
        ]
    )


def test_last_sentence_is_an_abstracts_conclusion_without_its_label():
    abstract = (
        "BACKGROUND Fever is common. METHODS We gave aspirin to 200 adults. "
        "CONCLUSIONS AND RELEVANCE Aspirin lowered their fever within an hour."
    )
    pairs, stats = structural_pairs(untitled_docs(abstract), {**CFG, "kinds": ["last_sentence"]}, seed=0)
    assert pairs.select("doc_id", "kind", "query", "positive").rows() == [
        (
            "paper",
            "last_sentence",
            "Aspirin lowered their fever within an hour.",
            "BACKGROUND Fever is common. METHODS We gave aspirin to 200 adults.",
        )
    ]
    assert stats["kept_by_kind"] == {"last_sentence": 1}


def test_findings_are_the_clauses_reporting_verbs_introduce():
    abstract = (
        "BACKGROUND Fever is common. We found that aspirin lowered fever within an hour. "
        "CONCLUSIONS These results suggest that mTOR inhibition is safe in adults. We show results."
    )
    pairs, stats = structural_pairs(untitled_docs(abstract), {**CFG, "kinds": ["finding"]}, seed=0)
    # Each finding leaves its own sentence out of the positive; a plain lower-case first word is
    # capitalised, a symbol keeps its case; "we show results" reports nothing.
    assert pairs.select("doc_id", "kind", "query", "positive").rows() == [
        (
            "paper",
            "finding",
            "Aspirin lowered fever within an hour.",
            "BACKGROUND Fever is common. CONCLUSIONS These results suggest that mTOR inhibition is safe "
            "in adults. We show results.",
        ),
        (
            "paper",
            "finding",
            "mTOR inhibition is safe in adults.",
            "BACKGROUND Fever is common. We found that aspirin lowered fever within an hour. "
            "We show results.",
        ),
    ]
    assert stats["kept_by_kind"] == {"finding": 2}


def test_max_pairs_is_a_seeded_sample():
    first, stats = structural_pairs(DOCS, CFG | {"max_pairs": 2}, seed=3)
    again, _ = structural_pairs(DOCS, CFG | {"max_pairs": 2}, seed=3)
    assert first.height == 2 and first.equals(again) and stats["rejected"]["over_max_pairs"] == 2
    # a sample of all four pairs, not the first two: another seed draws others
    assert first.select("doc_id", "kind").rows() == [("guide", "heading"), ("paper", "title")]
    other, _ = structural_pairs(DOCS, CFG | {"max_pairs": 2}, seed=1)
    assert other.select("doc_id", "kind").rows() == [("func", "docstring"), ("guide", "heading")]


@pytest.mark.parametrize(("share", "expected"), [(0.0, 0), (0.2, 1), (0.5, 4), (0.75, 4), (1.0, 4)])
def test_structural_share_of_the_balanced_set(share, expected):
    structural, _ = structural_pairs(DOCS, CFG, seed=0)
    generated = pl.DataFrame(
        {"row": [0, 1, 2, 3], "doc_id": ["d"] * 4, "query": list("abcd"), "task_type": ["sts"] * 4}
    )
    cfg = {"quotas": {"task_type": {"sts": 1.0}}, "max_pairs": 10, "structural_share": share}
    plan, _, _ = balance_plan(
        generated,
        structural.select("doc_id", "query", "kind").with_row_index("row").cast({"row": pl.Int64}),
        cfg | {"dev_fraction": 0.0},
        seed=0,
    )
    assert plan.filter(pl.col("generator") == "llm")["row"].sort().to_list() == [0, 1, 2, 3]
    pseudo = plan.filter(pl.col("source") == "structural")
    assert pseudo.height == expected  # 4 available; 0.75 would want 12
    assert (pseudo["generator"] == "structural:" + structural["kind"].gather(pseudo["row"])).all()
    assert (pseudo["query"] == structural["query"].gather(pseudo["row"])).all()


class CountingEncoder:
    def __init__(self):
        self.encoded: list[str] = []

    def encode_document(self, texts, **options):
        self.encoded += texts
        return pl.Series([[float(len(t))] for t in texts]).to_numpy()


def test_document_memo_encodes_each_text_once():
    inner = CountingEncoder()
    memo = DocumentMemo(inner)
    first = memo.encode_document(["a", "bb", "a"])
    second = memo.encode_document(["bb", "ccc"])
    assert inner.encoded == ["a", "bb", "ccc"]
    assert first[:, 0].tolist() == [1.0, 2.0, 1.0] and second[:, 0].tolist() == [2.0, 3.0]
