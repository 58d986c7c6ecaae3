import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import docx
import openpyxl
import polars as pl
import pptx
import pypdf
import pytest
from conftest import default_params, pdf_bytes, write_beir
from docx.enum.style import WD_STYLE_TYPE
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.util import Inches

from synthembed.corpus import (
    DOC_SCHEMA,
    Corpus,
    CorpusError,
    RecordFields,
    clean_documents,
    corpus_from_params,
    first_sentence,
    read_beir_set,
    read_corpus,
    read_stdlib,
    sampled_ids,
    sorted_documents,
    spill_documents,
    split_text,
    write_documents,
)
from synthembed.evaluate import eval_sets
from synthembed.io import InputError, write_parquet_row_groups
from synthembed.params import validate_params
from synthembed.structural import heading_pairs

MODULE = textwrap.dedent('''
    """A module."""

    def add(a, b):
        """Return the sum of a and b.

        Works for numbers.
        """
        total = a + b
        return total

    def _private(x):
        """Hidden helper function here."""
        return x

    def only_doc():
        """Nothing but a docstring."""

    class Stack:
        """A stack."""

        def push(self, item):
            """Put an item on top of the stack."""
            self.items.append(item)

        @property
        def size(self):
            """Number of items in it."""
            return len(self.items)

        @size.setter
        def size(self, value):
            """Setter docstring is never used."""
            raise AttributeError(value)
''')


@pytest.fixture
def fake_stdlib(tmp_path: Path) -> Path:
    (tmp_path / "mathish.py").write_text(MODULE)
    (tmp_path / "_internal.py").write_text(MODULE)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_x.py").write_text(MODULE)
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "installed.py").write_text(MODULE)
    return tmp_path


def test_stdlib_documents_have_docstrings_removed_and_sentences_as_queries(fake_stdlib):
    corpus = read_stdlib(fake_stdlib)
    assert [d["doc_id"] for d in corpus.docs] == ["mathish.add", "mathish.Stack.push", "mathish.Stack.size"]
    add = corpus.docs[0]
    assert add["text"] == "def add(a, b):\n    total = a + b\n    return total"
    assert add["source"] == "stdlib:mathish.py:4"
    size = corpus.docs[2]
    assert size["text"] == "@property\ndef size(self):\n    return len(self.items)"
    queries = {j["doc_id"]: j["query"] for j in corpus.judgments}
    assert queries == {
        "mathish.add": "Return the sum of a and b.",
        "mathish.Stack.push": "Put an item on top of the stack.",
        "mathish.Stack.size": "Number of items in it.",
    }
    for doc in corpus.docs:
        assert queries[doc["doc_id"]] not in doc["text"]


def test_an_unparseable_stdlib_file_is_an_error_or_a_rejected_row_naming_file_and_line(fake_stdlib):
    (fake_stdlib / "broken.py").write_text('def ok():\n    """Fine."""\n    return 1\n\nprint "python 2"\n')
    with pytest.raises(CorpusError, match=r"broken\.py:5: not parseable by this Python"):
        read_stdlib(fake_stdlib)
    klingon = fake_stdlib / "klingon.py"
    klingon.write_bytes(b"# -*- coding: klingon -*-\ndef f():\n    return 1\n")
    corpus = read_stdlib(fake_stdlib, on_bad_row="skip")
    assert [r["location"] for r in corpus.rejected] == [f"{fake_stdlib / 'broken.py'}:5", f"{klingon}:1"]
    assert (
        corpus.rejected[1]["reason"]
        == f"not parseable by this Python (unknown encoding for '{klingon}': klingon)"
    )
    assert [d["doc_id"] for d in corpus.docs] == ["mathish.add", "mathish.Stack.push", "mathish.Stack.size"]


def test_real_stdlib_is_large_and_clean():
    corpus = read_stdlib()
    assert len(corpus.docs) > 2000
    ids = [d["doc_id"] for d in corpus.docs]
    assert len(ids) == len(set(ids))
    assert not any(".test." in i or i.startswith("test.") for i in ids)


def test_first_sentence_joins_wrapped_lines():
    assert (
        first_sentence("Open a file\n    and return a stream.  Raise OSError.")
        == "Open a file and return a stream."
    )


def test_csv_parquet_and_text_folder_sources(tmp_path):
    (tmp_path / "c.csv").write_text("id,title,text\n1,One,first document text\n2,Two,second document text\n")
    pl.DataFrame({"doc_id": ["x"], "text": ["parquet document"]}).write_parquet(tmp_path / "c.parquet")
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Heading A\nbody of a")
    (folder / "sub" / "b.txt").write_text("plain b")
    assert [(d["doc_id"], d["title"]) for d in read_corpus("csv", str(tmp_path / "c.csv")).docs] == [
        ("1", "One"),
        ("2", "Two"),
    ]
    assert [d["text"] for d in read_corpus("parquet", str(tmp_path / "c.parquet")).docs] == [
        "parquet document"
    ]
    assert [(d["doc_id"], d["title"]) for d in read_corpus("textdir", str(folder)).docs] == [
        ("a.md", "Heading A"),
        ("sub/b.txt", "b"),
    ]


BOM = "\ufeff".encode()


def test_files_from_spreadsheets_and_windows_editors_are_read_as_their_authors_see_them(tmp_path):
    # Excel's "CSV UTF-8" opens with a byte order mark; where the comma is the decimal mark, its CSV
    # is delimited by semicolons.
    (tmp_path / "excel.csv").write_bytes(BOM + b'id,title,text\r\n1,Kettle,"Steel, 1.7 litres."\r\n')
    (tmp_path / "excel_de.csv").write_bytes(BOM + b'id;title;text\r\n1;Kettle;"Steel; 1,7 litres."\r\n')
    (tmp_path / "export.tsv").write_bytes(b"_id\ttext\n7\tA tab-separated row, with a comma.\n")
    (tmp_path / "c.jsonl").write_bytes(BOM + b'{"_id": "a", "text": "A line after the mark."}\n')
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "guide.md").write_bytes(BOM + b"# Install\r\n\r\nRun setup.\r\n")
    code = tmp_path / "code"
    code.mkdir()
    (code / "bom.py").write_bytes(BOM + b'def f(x):\n    """Double the number x."""\n    return 2 * x\n')
    latin = b'# -*- coding: latin-1 -*-\ndef g():\n    """Say the word caf\xe9."""\n    return "caf\xe9"\n'
    (code / "latin.py").write_bytes(latin)

    def read(source: str, path: Path) -> list[tuple[str, str, str]]:
        return [(d["doc_id"], d["title"], d["text"]) for d in read_corpus(source, str(path)).docs]

    assert read("csv", tmp_path / "excel.csv") == [("1", "Kettle", "Steel, 1.7 litres.")]
    assert read("csv", tmp_path / "excel_de.csv") == [("1", "Kettle", "Steel; 1,7 litres.")]
    assert read("csv", tmp_path / "export.tsv") == [("7", "", "A tab-separated row, with a comma.")]
    assert read("jsonl", tmp_path / "c.jsonl") == [("a", "", "A line after the mark.")]
    assert read("textdir", notes) == [("guide.md", "Install", "# Install\r\n\r\nRun setup.\r\n")]
    stdlib = read_stdlib(code)
    assert [(d["doc_id"], d["text"]) for d in stdlib.docs] == [
        ("bom.f", "def f(x):\n    return 2 * x"),
        ("latin.g", 'def g():\n    return "caf\u00e9"'),
    ]
    assert [j["query"] for j in stdlib.judgments] == ["Double the number x.", "Say the word caf\u00e9."]


def test_docs_fields_name_the_columns_of_a_catalog(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "sku;name;description;price\n"
        "K-17;Kettle;A steel kettle that holds 1.7 litres and boils fast.;20\n"
        ";Mug;A mug whose row lost its stock-keeping unit on export.;5\n"
    )
    docs = validate_params(default_params())["docs"] | {
        "source": "csv",
        "path": str(catalog),
        "fields": {"id": "sku", "title": "name", "text": "description"},
        "on_bad_row": "skip",
    }
    corpus = corpus_from_params(docs)
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("K-17", "Kettle", "A steel kettle that holds 1.7 litres and boils fast.")
    ]
    assert [(r["location"], r["reason"]) for r in corpus.rejected] == [
        (f"{catalog}:3", "field 'sku' is blank")
    ]
    # With BEIR's names the same file has no id column: every row says so.
    beir_names = {"id": None, "title": "title", "text": "text"}
    with pytest.raises(CorpusError, match=r"catalog\.csv:2: missing id \(one of _id, doc_id, id\)$"):
        list(corpus_from_params(docs | {"fields": beir_names, "on_bad_row": "error"}).docs)
    # A folder's files and a BEIR corpus have their own names, whatever docs.fields says.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "kettle.md").write_text("# Kettle\n\nA steel kettle that holds 1.7 litres.\n")
    notes = corpus_from_params(docs | {"source": "textdir", "path": str(tmp_path / "notes")})
    assert [(d["doc_id"], d["title"]) for d in notes.docs] == [("kettle.md", "Kettle")]
    kettle = {"_id": "k", "title": "Kettle", "text": "A steel kettle that holds 1.7 litres of water."}
    beir = write_beir(tmp_path / "beir", [kettle], [{"_id": "q", "text": "kettle"}], {"test": "q\tk\t1\n"})
    assert [d["doc_id"] for d in corpus_from_params(docs | {"source": "beir", "path": str(beir)}).docs] == [
        "k"
    ]
    with pytest.raises(InputError, match=r"^params: docs\.fields: Additional properties"):
        validate_params(default_params() | {"docs": docs | {"fields": {**docs["fields"], "body": "x"}}})


def test_a_cms_export_names_nested_fields_by_their_path_and_its_html_is_read_as_a_page_is(tmp_path):
    body = "<h2>Why</h2>\n<p>Scale slows a kettle&nbsp;down, so <em>descale</em> it.</p>"
    body += "\n<ul><li>Vinegar</li></ul>"
    posts = [  # as WordPress's REST API lists posts
        {"id": 7, "title": {"rendered": "Descaling &#8217;n care"}, "content": {"rendered": body}},
        {
            "id": 8,
            "title": {"rendered": "Moved"},
            "content": {"rendered": '<meta http-equiv="refresh" content="0; url=/care">'},
        },
        {"id": 9, "title": {"rendered": "Draft"}},
    ]
    export = tmp_path / "posts.json"
    export.write_text(json.dumps(posts))
    docs = validate_params(default_params())["docs"] | {
        "source": "json",
        "path": str(export),
        "fields": {"id": "id", "title": "title.rendered", "text": "content.rendered", "domain": None},
        "text_format": "html",
        "on_bad_row": "skip",
    }
    corpus = corpus_from_params(docs)
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("7", "Descaling \u2019n care", "## Why\n\nScale slows a kettle down, so descale it.\n\n- Vinegar")
    ]
    assert [(r["location"], r["reason"]) for r in corpus.rejected] == [
        (f"{export}: record 2", "a page that redirects at once (to /care)"),
        (f"{export}: record 3", "missing field 'content.rendered'"),
    ]
    as_written = corpus_from_params(docs | {"text_format": "plain"})
    assert next(d["text"] for d in as_written.docs) == body


def test_a_text_held_as_its_paragraphs_is_them_one_after_the_other(tmp_path):
    pages = tmp_path / "kilt.jsonl"  # as KILT's Wikipedia holds an article
    pages.write_text(
        json.dumps(
            {
                "_id": "290",
                "title": "A",
                "text": ["A\n", "A is the first letter.\n", " ", "Section::::History.\n"],
            }
        )
        + "\n"
        + json.dumps({"_id": "291", "text": ["A letter.", 7]})
        + "\n"
    )
    corpus = read_corpus("jsonl", str(pages), on_bad_row="skip")
    assert [d["text"] for d in corpus.docs] == ["A\n\nA is the first letter.\n\nSection::::History."]
    assert [r["reason"] for r in corpus.rejected] == [
        "field 'text' must be a string or a list of strings, got list"
    ]


def test_a_records_own_domain_labels_it_unless_docs_domain_labels_every_document(tmp_path):
    # A project's corpus: its functions and its prose pages in one file.
    mixed = tmp_path / "project.jsonl"
    long_function = (
        "def area(r):\n" + "".join(f"    step_{i} = r * {i}\n" for i in range(30)) + "    return r"
    )
    records = [
        {"_id": "area", "text": long_function, "domain": "code"},
        {"_id": "guide", "text": "Install the package, then call area with a radius. " * 4},
        {"_id": "terms", "text": "The licence grants the right to use the software freely.", "domain": ""},
        {"_id": "bad", "text": "A page whose domain is a list, which no label can be.", "domain": ["x"]},
    ]
    mixed.write_text("".join(json.dumps(record) + "\n" for record in records))
    docs = validate_params(default_params())["docs"] | {
        "source": "jsonl",
        "path": str(mixed),
        "split_words": 20,
        "on_bad_row": "skip",
    }
    corpus = corpus_from_params(docs)
    # Code is never split; the guide's 40 words are, as prose.
    assert [(d["doc_id"], d["domain"]) for d in corpus.docs] == [
        ("area", "code"),
        ("guide#1", "general"),
        ("guide#2", "general"),
        ("terms", "general"),
    ]
    assert [r["reason"] for r in corpus.rejected] == ["field 'domain' must be a string, got list"]
    labelled = corpus_from_params(docs | {"domain": "law", "split_words": None})
    assert {d["domain"] for d in labelled.docs} == {"law"}


def test_a_markdown_file_is_read_as_it_renders_without_html_comments_and_titled_by_a_real_heading(tmp_path):
    page = (
        "```sh\n# fetch the sources\ngit clone repo\n```\n\n"
        "## `session.close()`\n\n<!-- YAML\nadded: v8.4.0\n-->\n\n"
        "Closes the session. <!-- TODO: link -->\n\n```html\n<!-- an example -->\n```\n"
        "````md\n```html\n<!-- inside a longer fence -->\n```\n````\n"
    )
    (tmp_path / "api.md").write_text(page)
    (tmp_path / "notes.txt").write_text("Plain text: <!-- shown as written -->")
    docs = {d["doc_id"]: d for d in read_corpus("textdir", str(tmp_path)).docs}
    assert docs["api.md"]["title"] == "`session.close()`"  # not the shell comment in the fence
    assert docs["api.md"]["text"] == (
        "```sh\n# fetch the sources\ngit clone repo\n```\n\n"
        "## `session.close()`\n\nCloses the session.\n\n```html\n<!-- an example -->\n```\n"
        "````md\n```html\n<!-- inside a longer fence -->\n```\n````"
    )
    assert docs["notes.txt"]["text"] == "Plain text: <!-- shown as written -->"


def test_a_markdown_pages_links_read_as_their_text_without_images_or_link_definitions(tmp_path):
    page = (
        "# [Kettle](https://example.com/kettle)\n\n"
        'Read the [care guide](care.md#top "Care") and [`descale()`][descale], or [the safety\n'
        "notes][]. ![A kettle](kettle.png) See [Scale] and [[Limescale|scale notes]] ![[diagram.png]].\n\n"
        "- [ ] buy vinegar, <https://example.com/shop>\n"
        "- \\[0, [`MAX`][]] litres[^1]\n\n"
        "[descale]: api.md#descale\n"
        "[the safety notes]: safety.md 'Safety'\n"
        "[scale]: <scale.md>\n"
        "[`MAX`]: api.md#max\n"
        "[^1]: Litres.\n\n"
        "```md\n[kept](as-written.md)\n```\n"
        "Write `[text](url)` for a link."
    )
    (tmp_path / "kettle.md").write_text(page)
    (doc,) = read_corpus("textdir", str(tmp_path)).docs
    assert (doc["title"], doc["text"]) == (
        "Kettle",
        "# Kettle\n\n"
        "Read the care guide and `descale()`, or the safety\n"
        "notes. See Scale and scale notes.\n\n"
        "- [ ] buy vinegar, https://example.com/shop\n"
        "- \\[0, `MAX`] litres[^1]\n\n"
        "[^1]: Litres.\n\n"
        "```md\n[kept](as-written.md)\n```\n"
        "Write `[text](url)` for a link.",
    )


def test_a_markdown_pages_front_matter_names_it_and_is_not_its_text(tmp_path):
    pages = {
        # npm's and Jekyll's YAML, whose title wins over the first heading
        "npm-access.md": "---\ntitle: npm-access\nsection: 1\n---\n\n### Synopsis\n\nSet access.\n",
        "install.md": '+++\ntitle = "Install"\ndraft = false\n+++\nRun pip.\n',  # Hugo's TOML
        "post.md": "---\nlayout: post\n---\n# Release 2.0\n\nFaster.\n",  # no title: the heading
        "page.md": "---\n---\nA page Jekyll renders.\n",  # empty front matter marks a page
        "untitled.md": "---\ntitle: ''\n...\nNo title given.\n",  # YAML's end marker
        "rule.md": "---\nA setext heading\n---\nNot a mapping, so text.\n",  # a rule, then a heading
        "notes.txt": "---\ntitle: Notes\n---\nPlain text keeps every line.\n",
    }
    for name, page in pages.items():
        (tmp_path / name).write_text(page)
    docs = [(d["doc_id"], d["title"], d["text"]) for d in read_corpus("textdir", str(tmp_path)).docs]
    assert docs == [
        ("install.md", "Install", "Run pip.\n"),
        ("notes.txt", "notes", "---\ntitle: Notes\n---\nPlain text keeps every line.\n"),
        ("npm-access.md", "npm-access", "\n### Synopsis\n\nSet access.\n"),
        ("page.md", "page", "A page Jekyll renders.\n"),
        ("post.md", "Release 2.0", "# Release 2.0\n\nFaster.\n"),
        ("rule.md", "A setext heading", "---\n## A setext heading\nNot a mapping, so text.\n"),
        ("untitled.md", "untitled", "No title given.\n"),
    ]


def encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pdf_is_its_text_layer_titled_by_its_document_title_and_a_locked_one_a_bad_row(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    header = "Cell Biology, Chapter 2"  # a running header and page numbers: not text of the document
    pages = [
        [header, "Protein folding", "Chaperones help proteins fold.", "1"],
        [header, "2"],
        [],
        [header, "Misfolded proteins aggregate.", "4"],
    ]
    paper = pdf_bytes(pages, title="Folding in the cell")
    (folder / "folding.pdf").write_bytes(paper)
    (folder / "untitled.pdf").write_bytes(pdf_bytes([["A report without a stated title."]]))
    # a title property naming the file it was printed from is not the document's title
    (folder / "printed.pdf").write_bytes(pdf_bytes([["Printed from Word."]], title="Microsoft Word - a.docx"))
    (folder / "restricted.pdf").write_bytes(encrypted(paper, user_password=""))  # opens, prints nothing
    (folder / "locked.pdf").write_bytes(encrypted(paper, user_password="secret"))
    corpus = read_corpus("textdir", str(folder), on_bad_row="skip")
    text = "Protein folding\nChaperones help proteins fold.\n\nMisfolded proteins aggregate."  # no blank page
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("folding.pdf", "Folding in the cell", text),
        ("printed.pdf", "printed", "Printed from Word."),
        ("restricted.pdf", "Folding in the cell", text),
        ("untitled.pdf", "untitled", "A report without a stated title."),
    ]
    assert corpus.rejected == [
        {
            "location": str(folder / "locked.pdf"),
            "doc_id": None,
            "reason": "encrypted PDF (a password is needed)",
        }
    ]


def test_an_mdx_page_is_its_markdown_without_imports_jsx_or_a_site_generators_marks(tmp_path):
    (tmp_path / "callout.mdx").write_text(
        "---\ntitle: Callouts\n---\n\n"
        "import Callout from 'nextra-theme-docs/callout'\nimport {\n  Tabs,\n} from 'nextra/components'\n\n"
        "# Callout component {/* #callout */}\n\n"
        '<Callout type="warning" emoji="⚠️">\n  This API will be deprecated soon.\n</Callout>\n\n'
        ":::tip[Keep it short]\nOne sentence is best.\n:::\n\n"
        "Write `<Callout>` in a page:\n\n```mdx\n<Callout>Hi</Callout>\n```\n\n"
        "<Button onClick={() => alert('hi')}>Click me</Button>\n\n"
        "export const meta = {\n  draft: true,\n}\n"
    )
    (tmp_path / "setup.markdown").write_text("# Setup {#setup}\n\n:::note\n\nRun it once.\n\n:::\n\nDone.\n")
    docs = [(d["doc_id"], d["title"], d["text"]) for d in read_corpus("textdir", str(tmp_path)).docs]
    assert docs == [
        (
            "callout.mdx",
            "Callouts",
            "# Callout component\n\n  This API will be deprecated soon.\n\n"
            "Keep it short\nOne sentence is best.\n\n"
            "Write `<Callout>` in a page:\n\n```mdx\n<Callout>Hi</Callout>\n```\n\nClick me",
        ),
        ("setup.markdown", "Setup", "# Setup\n\nRun it once.\n\nDone."),
    ]


def drawn(lines: list[tuple[int, int, int, str]]) -> str:
    """A PDF page's content stream drawing each (x, y, size, text) line by a text matrix scaled to its
    font size, as word processors write it."""
    return " ".join(f"BT /F1 1 Tf {size} 0 0 {size} {x} {y} Tm ({text}) Tj ET" for x, y, size, text in lines)


def test_a_pdfs_paragraphs_columns_and_headings_are_read_from_where_and_how_large_it_draws_them(tmp_path):
    body = 11  # points, 14 apart within a paragraph; a wider gap, or a new column, starts another
    title = [(72, 752, 18, "Protein folding"), (72, 730, 18, "in the cell")]  # spaced as its size is
    left_column = [
        (72, 700, body, "Chaperones assist the fold-"),  # a word hyphenated at the line's end
        (72, 686, body, "ing of new proteins in the cell."),
        (72, 662, body, "Misfolded proteins aggregate"),
        (72, 648, body, "and are then degraded by \\256ve enzymes."),  # fi as one glyph (ligature)
    ]
    right_column = [
        (320, 700, 14, "Methods of"),  # a heading on two lines
        (320, 684, 14, "measurement"),
        (320, 660, body, "We measured folding rates"),
        (320, 646, body, "by fluorescence and found"),  # runs on to the next page
    ]
    pages = [
        drawn([*title, *left_column, *right_column]),
        drawn(
            [
                (72, 700, body, "that rates double with heat."),
                (72, 676, body, "A new paragraph."),
                (72, 662, body, "# fold --rate"),  # a shell comment set as text: no heading
            ]
        ),
    ]
    (tmp_path / "folding.pdf").write_bytes(pdf_bytes(pages))
    [doc] = read_corpus("textdir", str(tmp_path)).docs
    assert doc["title"] == "Protein folding in the cell"  # no stated title: its first heading
    assert doc["text"] == (
        "# Protein folding in the cell\n\n"
        "Chaperones assist the folding\nof new proteins in the cell.\n\n"
        "Misfolded proteins aggregate\nand are then degraded by five enzymes.\n\n"
        "## Methods of measurement\n\n"
        "We measured folding rates\nby fluorescence and found\nthat rates double with heat.\n\n"
        "A new paragraph.\n\\# fold --rate"
    )
    headings = [heading for heading, _ in heading_pairs(doc["text"])]
    assert headings == ["Protein folding in the cell", "Methods of measurement"]


def test_a_word_document_is_its_text_in_markdown_titled_by_its_document_title_else_heading(tmp_path):
    document = docx.Document()  # python-docx's default template: Word's own styles
    document.core_properties.title = "Kettle manual"
    document.add_heading("Steel kettle", level=0)  # the "Title" style, here on two lines
    document.add_heading("for owners", level=0)
    document.add_heading("Safety", level=2)
    document.add_paragraph("Do not fill it above the MAX line.")
    document.add_paragraph("# kettle --check")  # a shell comment typed as text: no heading
    document.add_paragraph("Unplug it first.", style="List Bullet")
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Size", "Litres", "Watts"], strict=True):
        cell.text = text
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "Small, 1.0"
    table.cell(1, 2).text = "2200"
    lines = document.add_paragraph("Descale it monthly.")
    lines.add_run().add_break()
    lines.add_run("Dry it after use.")
    document.add_paragraph("")
    code = document.styles.add_style("Source Code", WD_STYLE_TYPE.PARAGRAPH)  # as pandoc names it
    for line in ["while scaled(kettle):", "", "    descale(kettle)"]:
        document.add_paragraph(line, style=code)
    document.save(tmp_path / "kettle.docx")
    untitled = docx.Document()
    untitled.add_paragraph("A note without a stated title or a heading.")
    untitled.save(tmp_path / "note.docx")
    headed = docx.Document()
    headed.add_heading("Descaling", level=1)
    headed.add_paragraph("Vinegar and water, one to one.")
    headed.save(tmp_path / "descaling.docx")
    docs = [(d["doc_id"], d["title"], d["text"]) for d in read_corpus("textdir", str(tmp_path)).docs]
    assert docs == [
        ("descaling.docx", "Descaling", "# Descaling\n\nVinegar and water, one to one."),  # by its heading
        (
            "kettle.docx",
            "Kettle manual",
            "# Steel kettle for owners\n\n## Safety\n\nDo not fill it above the MAX line.\n\n"
            "\\# kettle --check\n\n- Unplug it first.\n\nSize Litres Watts\nSmall, 1.0 2200\n\n"
            "Descale it monthly.\nDry it after use.\n\n"
            "```\nwhile scaled(kettle):\n\n    descale(kettle)\n```",
        ),
        ("note.docx", "note", "A note without a stated title or a heading."),
    ]


def test_a_presentation_is_its_slides_titles_text_tables_and_notes_in_reading_order(tmp_path):
    deck = pptx.Presentation()  # python-pptx's default template: PowerPoint's own layouts
    deck.core_properties.title = "PowerPoint Presentation"  # PowerPoint's default: not the deck's title
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = "Kettle care"
    cover.placeholders[1].text = "A guide for owners"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Descaling"
    body = slide.placeholders[1].text_frame
    body.text = "Fill it with vinegar"
    detail = body.add_paragraph()
    detail.text, detail.level = "one part in four", 1
    body.add_paragraph().text = "Boil and rinse"

    def slide_number(placeholders):
        return next(p for p in placeholders if p.placeholder_format.type == PP_PLACEHOLDER.SLIDE_NUMBER)

    slide.shapes.clone_placeholder(slide_number(slide.slide_layout.placeholders))
    slide_number(slide.placeholders).text = "2"  # the master's furniture, not the slide's text
    table = slide.shapes.add_table(2, 3, Inches(1), Inches(6), Inches(6), Inches(1)).table
    for cell, text in zip(table.rows[0].cells, ["Size", "Litres", "Watts"], strict=True):
        cell.text = text
    table.cell(1, 0).merge(table.cell(1, 1))
    table.cell(1, 0).text, table.cell(1, 2).text = "Small, 1.0", "2200"
    group = slide.shapes.add_group_shape()
    note = group.shapes.add_textbox(Inches(6), Inches(5), Inches(3), Inches(1)).text_frame
    note.text = "Safety first\vunplug it"  # a line break within the paragraph
    slide.notes_slide.notes_text_frame.text = "Do this monthly.\nSay why."
    hidden = deck.slides.add_slide(deck.slide_layouts[1])
    hidden.shapes.title.text = "Draft"
    hidden.element.set("show", "0")
    deck.save(tmp_path / "kettle.pptx")
    (tmp_path / "old.pptx").write_bytes(b"\xd0\xcf\x11\xe0 an old binary .ppt renamed")
    corpus = read_corpus("textdir", str(tmp_path), on_bad_row="skip")
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        (
            "kettle.pptx",
            "Kettle care",
            "# Kettle care\n\nA guide for owners\n\n"
            "## Descaling\n\n- Fill it with vinegar\n  - one part in four\n- Boil and rinse\n\n"
            "Safety first\nunplug it\n\nSize Litres Watts\nSmall, 1.0 2200\n\nDo this monthly.\n\nSay why.",
        )
    ]
    reason = "not a readable PowerPoint presentation (not a zip archive: a .ppt renamed, or damaged)"
    assert corpus.rejected == [{"location": str(tmp_path / "old.pptx"), "doc_id": None, "reason": reason}]


def epub_bytes(chapters: dict[str, str], spine: str, encrypted: tuple[str, ...] = ()) -> bytes:
    """An EPUB book: its package document in OEBPS/, titled "Kettles", its ``chapters`` (path under OEBPS/:
    XHTML body) in the manifest, the ``spine``'s itemrefs, and ``encrypted`` chapters listed as encrypted."""
    container = (
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    items = "".join(
        f'<item id="c{k}" href="{path.replace(" ", "%20")}" media-type="application/xhtml+xml"/>'
        for k, path in enumerate(chapters)
    )
    package = (
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Kettles</dc:title></metadata>'
        f"<manifest>{items}</manifest><spine>{spine}</spine></package>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
        book.writestr("OEBPS/content.opf", package)
        for path, body in chapters.items():
            book.writestr(
                f"OEBPS/{path}", f'<html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>'
            )
        if encrypted:
            references = "".join(
                f'<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><CipherData>'
                f'<CipherReference URI="OEBPS/{path}"/></CipherData></EncryptedData>'
                for path in encrypted
            )
            ocf = "urn:oasis:names:tc:opendocument:xmlns:container"
            book.writestr("META-INF/encryption.xml", f'<encryption xmlns="{ocf}">{references}</encryption>')
    return out.getvalue()


def test_an_epub_book_is_its_chapters_in_reading_order_and_one_under_drm_a_bad_row(tmp_path):
    chapters = {
        "cover.xhtml": "<p>Cover</p>",
        "text/boiling water.xhtml": "<h1>Boiling</h1><p>A kettle boils a litre in three minutes.</p>",
        "text/scale.xhtml": "<h1>Scale</h1><p>Descale it <em>monthly</em>.</p>",
    }
    spine = '<itemref idref="c0" linear="no"/><itemref idref="c2"/><itemref idref="c1"/>'  # the spine's order
    (tmp_path / "kettles.epub").write_bytes(epub_bytes(chapters, spine))
    (tmp_path / "locked.epub").write_bytes(epub_bytes(chapters, spine, encrypted=("text/scale.xhtml",)))
    (tmp_path / "fonts.epub").write_bytes(epub_bytes(chapters, spine, encrypted=("fonts/serif.otf",)))
    (tmp_path / "book.epub").write_bytes(b"BOOKMOBI a Kindle book renamed")
    corpus = read_corpus("textdir", str(tmp_path), on_bad_row="skip")
    text = "# Scale\n\nDescale it monthly.\n\n# Boiling\n\nA kettle boils a litre in three minutes."
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("fonts.epub", "Kettles", text),  # an obfuscated font is not a locked chapter
        ("kettles.epub", "Kettles", text),
    ]
    assert [(row["location"], row["reason"]) for row in corpus.rejected] == [
        (
            str(tmp_path / "book.epub"),
            "not a readable EPUB book (not a zip archive: a .mobi renamed, or damaged)",
        ),
        (str(tmp_path / "locked.epub"), "encrypted EPUB (its chapters need a DRM key)"),
    ]


ODF_SCHEMAS = {"office": "office", "style": "style", "text": "text", "table": "table", "draw": "drawing"}
ODF_NAMESPACES = " ".join(
    f'xmlns:{prefix}="urn:oasis:names:tc:opendocument:xmlns:{name}:1.0"'
    for prefix, name in ODF_SCHEMAS.items()
)


def odt_bytes(body: str, title: str | None) -> bytes:
    """An OpenDocument text as LibreOffice writes one: ``body`` in its content's text, automatic styles P1
    based on "Heading 2" and P2 on "Preformatted Text", a page footer in its styles, ``title`` its document
    title."""
    content = (
        f'<office:document-content {ODF_NAMESPACES}><office:automatic-styles><style:style style:name="P1"'
        ' style:family="paragraph" style:parent-style-name="Heading_20_2"/><style:style style:name="P2"'
        ' style:family="paragraph" style:parent-style-name="Preformatted_20_Text"/></office:automatic-styles>'
        f"<office:body><office:text>{body}</office:text></office:body></office:document-content>"
    )
    stated = f"<dc:title>{title}</dc:title>" if title else ""
    meta = (
        '<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<office:meta>{stated}</office:meta></office:document-meta>"
    )
    styles = (
        f"<office:document-styles {ODF_NAMESPACES}><office:master-styles><style:master-page>"
        "<style:footer><text:p>Page 1</text:p></style:footer></style:master-page></office:master-styles>"
        "</office:document-styles>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as document:
        document.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        for name, xml in [("content.xml", content), ("meta.xml", meta), ("styles.xml", styles)]:
            document.writestr(name, xml)
    return out.getvalue()


def test_an_opendocument_text_is_its_headings_lists_tables_and_text_boxes_without_notes_or_indexes(tmp_path):
    body = (
        '<text:p text:style-name="Title">Kettle care</text:p>'
        '<text:p text:style-name="Title">for owners</text:p>'
        "<text:table-of-content><text:index-body><text:p>Descaling 1</text:p></text:index-body>"
        "</text:table-of-content>"
        '<text:h text:outline-level="2"><text:number>1.</text:number>Descaling</text:h>'
        "<text:p>Fill it with <text:span>vinegar</text:span>"
        "<text:note><text:note-citation>1</text:note-citation>"
        "<text:note-body><text:p>White vinegar.</text:p></text:note-body></text:note>"
        "<office:annotation><text:p>Check this</text:p></office:annotation>, then boil.</text:p>"
        "<text:tracked-changes><text:changed-region><text:deletion><text:p>Use lemon.</text:p>"
        "</text:deletion></text:changed-region></text:tracked-changes>"
        "<text:list><text:list-item><text:p>Unplug it</text:p></text:list-item><text:list-item><text:p>Rinse"
        "</text:p><text:list><text:list-item><text:p>twice</text:p></text:list-item></text:list></text:list-item>"
        "</text:list>"
        '<text:section><text:p text:style-name="P1">Sizes</text:p>'
        "<table:table><table:table-header-rows><table:table-row><table:table-cell><text:p>Size</text:p>"
        "</table:table-cell><table:table-cell><text:p>Litres</text:p></table:table-cell><table:table-cell>"
        "<text:p>Watts</text:p></table:table-cell></table:table-row></table:table-header-rows>"
        '<table:table-row><table:table-cell table:number-columns-spanned="2"><text:p>Small, 1.0</text:p>'
        "</table:table-cell><table:covered-table-cell/><table:table-cell><text:p>2200</text:p></table:table-cell>"
        "</table:table-row></table:table></text:section>"
        "<text:p>Descale it<draw:frame><draw:text-box><text:p>Safety first</text:p></draw:text-box>"
        "</draw:frame></text:p>"
        '<text:p text:style-name="P2">while scaled(kettle):</text:p><text:p text:style-name="P2"/>'
        '<text:p text:style-name="Preformatted_20_Text"><text:s text:c="4"/>descale(kettle)</text:p>'
    )
    (tmp_path / "kettle.odt").write_bytes(odt_bytes(body, title=None))
    (tmp_path / "manual.odt").write_bytes(
        odt_bytes("<text:p>A kettle boils water.</text:p>", "Kettle manual")
    )
    (tmp_path / "old.odt").write_bytes(b"\xd0\xcf\x11\xe0 an old binary .doc renamed")
    corpus = read_corpus("textdir", str(tmp_path), on_bad_row="skip")
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        (
            "kettle.odt",
            "Kettle care for owners",
            "# Kettle care for owners\n\n## Descaling\n\nFill it with vinegar, then boil.\n\n"
            "- Unplug it\n- Rinse\n  - twice\n\n## Sizes\n\nSize Litres Watts\nSmall, 1.0 2200\n\n"
            "Descale it\n\nSafety first\n\n```\nwhile scaled(kettle):\n\n    descale(kettle)\n```",
        ),
        ("manual.odt", "Kettle manual", "A kettle boils water."),
    ]
    reason = "not a readable OpenDocument text (not a zip archive: a .doc renamed, or damaged)"
    assert corpus.rejected == [{"location": str(tmp_path / "old.odt"), "doc_id": None, "reason": reason}]


def test_an_asciidoc_page_is_read_as_asciidoctor_renders_it_in_markdown(tmp_path):
    page = r"""= Kettle Guide
J. Doe <jd@example.com>
v2.0, 2026-01-05
:product: Kettle 2
:doctitle: The {product} Guide

// a note to the editors
////
A draft paragraph.
////
The {product} boils{nbsp}water; write \{product} for its name.
See <<care,Care>> and xref:safety.adoc[Safety, in short].footnote:[Since 2024.]
image:logo.png[Logo] Buy at https://example.com/shop[the shop^].

include::shared/warranty.adoc[]

Care
----
ifdef::pro[]
Descale it monthly.
endif::pro[]

[source,python]
----
// not a comment in code
== not a heading in code
kettle.descale()
----

.Limescale table
|===
|Litres |Minutes
|1.7 |3
|===

* Unplug it.
** Let it cool.
+
[NOTE]
====
Vinegar works.
====
. Fill it.

Limescale::
	The white crust
	on the element.

	$ kettle --status
	scaled

Crash report
~~~~~~~~~~~~
....
== kept as written
....
"""
    (tmp_path / "guide.adoc").write_text(page)
    (tmp_path / "notes.asciidoc").write_text("A page\n======\n\nNo doctitle.\n")
    docs = {d["doc_id"]: d for d in read_corpus("textdir", str(tmp_path)).docs}
    assert (docs["guide.adoc"]["title"], docs["guide.adoc"]["text"]) == (
        "The Kettle 2 Guide",
        "# Kettle Guide\n\n"
        "The Kettle 2 boils\u00a0water; write {product} for its name.\n"
        "See Care and Safety, in short.\n"
        "Buy at the shop.\n\n"
        "## Care\nDescale it monthly.\n\n"
        "```python\n// not a comment in code\n== not a heading in code\nkettle.descale()\n```\n\n"
        "Limescale table\n|Litres |Minutes\n|1.7 |3\n\n"
        "- Unplug it.\n  - Let it cool.\nVinegar works.\n1. Fill it.\n\n"
        "Limescale\n\tThe white crust\n\ton the element.\n\n"
        "```\n$ kettle --status\nscaled\n```\n\n"
        "### Crash report\n```\n== kept as written\n```",
    )
    assert (docs["notes.asciidoc"]["title"], docs["notes.asciidoc"]["text"]) == (
        "A page",
        "# A page\n\nNo doctitle.",
    )


def test_a_latex_paper_is_read_as_its_text_and_structure_in_markdown(tmp_path):
    paper = r"""% !TEX program = pdflatex
\documentclass[11pt]{article}
\usepackage{amsmath,listings}
\newcommand{\ours}{\textsc{KettleNet}}
\newcommand{\vect}[1]{\mathbf{#1}}
\def\papertitle{Descaling with \ours}
\title{\papertitle\thanks{Preprint.}}
\author{J. Doe \and R. Roe}
\begin{document}
\maketitle
\begin{abstract}
We show that \ours{} removes limescale in na\"ive kettles.
\end{abstract}
\section{Introduction}\label{sec:intro}
Limescale~\cite{doe2020} costs energy---about 10\,\%
% a comment in the text
of it, see Section~\ref{sec:method}.\footnote{Measured at home.}

\# 1 cause: hard water.
\subsection*{Setup}
\begin{itemize}
  \item Fill it with vinegar.
  \item Boil it:
  \begin{enumerate}
    \item once;
    \item twice.
  \end{enumerate}
\end{itemize}
\begin{description}
  \item[Limescale] the white crust.
\end{description}
\begin{table}[h]
  \centering
  \begin{tabular}{lr}
    \hline
    Litres & Minutes \\
    1.7 & 3 \\
  \end{tabular}
  \caption{Boiling \emph{times}.}
\end{table}
\begin{lstlisting}[language=Python, caption={Descaling}]
# not a heading
kettle.descale()  % not a comment
\end{lstlisting}
%\begin{verbatim}
Its loss is $\vect{x}^2$, see \url{https://example.com/kettle} and \href{https://example.com}{our site}.

\kettlenote[width=3cm]{Keep it dry.}
\end{document}
"""
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "main.tex").write_text(paper)
    (tmp_path / "paper" / "refs.bib").write_text("@article{doe2020, title={Limescale}}\n")
    (tmp_path / "paper" / "method.tex").write_text("\\section{Method}\\label{sec:method}\nWe boil it.\n")
    notes = "\\documentclass{article}\n\\usepackage[latin1]{inputenc}\n\\begin{document}\nCaf\xe9 au lait.\n"
    (tmp_path / "notes.tex").write_bytes(f"{notes}\\end{{document}}\n".encode("latin-1"))
    corpus = read_corpus("textdir", str(tmp_path))
    docs = {d["doc_id"]: (d["title"], d["text"]) for d in corpus.docs}
    assert docs == {
        "notes.tex": ("notes", "Café au lait."),
        "paper/main.tex": (
            "Descaling with KettleNet",
            "We show that KettleNet removes limescale in naïve kettles.\n\n"
            "# Introduction\n\n"
            "Limescale costs energy—about 10 % of it, see Section.\n\n"
            "\\# 1 cause: hard water.\n\n"
            "## Setup\n\n"
            "- Fill it with vinegar.\n- Boil it:\n\n  1. once;\n  1. twice.\n\n"
            "Limescale\nthe white crust.\n\n"
            "Litres Minutes\n1.7 3\n\n"
            "Boiling times.\n\n"
            "```python\n# not a heading\nkettle.descale()  % not a comment\n```\n\n"
            "Its loss is $\\vect{x}^2$, see https://example.com/kettle and our site.\n\n"
            "Keep it dry.",  # a class's macro: its text, not its options
        ),
        "paper/method.tex": ("Method", "# Method\n\nWe boil it."),
    }
    assert corpus.rejected == [
        {
            "location": str(tmp_path / "paper" / "refs.bib"),
            "doc_id": None,
            "reason": "an asset, not a page ('.bib')",
        }
    ]


def test_a_notebook_is_the_markdown_of_its_cells_and_one_that_is_not_a_bad_row_at_its_line(tmp_path):
    cells = [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": ["Churn model\n", "===========\n", "<!-- draft -->"],
        },
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "outputs": [],
            "source": "# load\ndf = load()",
        },
        {"cell_type": "markdown", "metadata": {}, "source": "We drop customers without a contract."},
    ]
    notebook = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4}
    (tmp_path / "churn.ipynb").write_text(json.dumps(notebook, indent=1))
    (tmp_path / "cut.ipynb").write_text('{\n "cells": [\n  {"cell_type": "code",\n')  # a save cut short
    (tmp_path / "data.ipynb").write_text('{"rows": [1, 2]}')
    corpus = read_corpus("textdir", str(tmp_path), on_bad_row="skip")
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        (
            "churn.ipynb",
            "Churn model",  # a setext heading, and the code's "# load" is no heading
            "# Churn model\n\n```python\n# load\ndf = load()\n```\n\nWe drop customers without a contract.",
        )
    ]
    assert [(r["location"].removeprefix(f"{tmp_path}/"), r["reason"]) for r in corpus.rejected] == [
        ("cut.ipynb:4", "invalid JSON (Expecting property name enclosed in double quotes at column 1)"),
        ("data.ipynb", "not a Jupyter notebook (no list of cells)"),
    ]


def test_a_docs_folders_images_and_styles_are_rejected_rows_not_errors(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "guide.md").write_text("# Guide\n\nSee the diagram.\n")
    (tmp_path / "images" / "diagram.PNG").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "theme.css").write_text("h1 { color: navy }")
    corpus = read_corpus("textdir", str(tmp_path), on_bad_row="error")  # they stop nothing
    assert [d["doc_id"] for d in corpus.docs] == ["guide.md"]
    assert [(r["location"].removeprefix(f"{tmp_path}/"), r["reason"]) for r in corpus.rejected] == [
        ("images/diagram.PNG", "an asset, not a page ('.PNG')"),
        ("theme.css", "an asset, not a page ('.css')"),
    ]
    (tmp_path / "slides.key").write_bytes(b"PK\x03\x04")  # a document of a type not read: an error
    with pytest.raises(CorpusError, match=r"slides\.key: unsupported file type '\.key'"):
        list(read_corpus("textdir", str(tmp_path), on_bad_row="error").docs)


def test_an_html_page_is_the_text_a_reader_sees_in_markdown(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    page = """<!DOCTYPE html><html><head><title>Kettles | Shop</title><script>track()</script>
<style>h1 {color: red}</style></head><body>
<a class="skip-link" href="#main">Skip to content</a>
<header><a href="/">Shop</a> <nav><a href="/kettles">Kettles</a></nav></header>
<div class="menu-bar"><h1 class="menu-title">Shop</h1></div>
<main id="main"><article><header><h1>Steel kettle<a class="headerlink" href="#kettle">\u00b6</a></h1></header>
<p>Boils 1.7 litres
  in <em>three</em> minutes.<br>Dishwasher safe.</p>
<div aria-hidden="true">decoration</div><button>Add to cart</button>
<h2>Sizes<a href="#sizes">#</a></h2>
<table><tr><th>Size</th><th>Litres</th></tr><tr><td>Small</td><td>1.0</td></tr>
<tr><td><p class="tableblock">Large</p></td><td><p>1.7</p><p>(2.0 brimful)</p></td></tr></table>
<p><code># kettle --boil</code></p>
<ul><li>Steel<li>Glass</ul><pre><code>kettle.boil()
</code></pre></article></main>
<footer>&copy; Shop</footer></body></html>"""
    (folder / "kettle.html").write_text(page)
    # without a main element: everything but the site's navigation, banner and footer
    api = """<html><body><div role="navigation"><ul><li><a href="fs.html">fs</a></ul></div>
<header><h1>Node.js documentation</h1></header><div id="content"><h2>File system<span>
<a class="mark" href="#fs">#</a></span></h2><p>Reads and writes files.<p>Stability: 2</div>
<footer>Licensed under MIT</footer>"""
    (folder / "fs.html").write_text(api)
    latin = '<meta charset="windows-1252"><title>Caf\u00e9 menu</title><p>Caf\u00e9 au lait.</p>'
    (folder / "menu.htm").write_bytes(latin.encode("cp1252"))  # no heading: its <title> names it
    (folder / "notes.html").write_text("<title>Untitled</title><p>Descale monthly.</p>")  # a default title
    (folder / "broken.html").write_bytes("<p>Caf\u00e9</p>".encode("cp1252"))  # no charset named
    moved = '<meta http-equiv="Refresh" content="0; URL=kettle.html"><p>Redirecting to kettle.html</p>'
    (folder / "old.html").write_text(moved)  # never shown: not a document, and not malformed either
    (folder / "notice.html").write_text('<meta http-equiv="refresh" content="5; url=/"><p>We moved.</p>')
    corpus = read_corpus("textdir", str(folder), on_bad_row="skip")
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("fs.html", "File system", "## File system\n\nReads and writes files.\n\nStability: 2"),
        (
            "kettle.html",
            "Steel kettle",
            "# Steel kettle\n\nBoils 1.7 litres in three minutes.\nDishwasher safe.\n\n## Sizes\n\n"
            "Size Litres\n\nSmall 1.0\n\nLarge 1.7 (2.0 brimful)\n\n\\# kettle --boil\n\n"
            "- Steel\n\n- Glass\n\n```\nkettle.boil()\n```",
        ),
        ("menu.htm", "Caf\u00e9 menu", "Caf\u00e9 au lait."),
        ("notes.html", "notes", "Descale monthly."),
        ("notice.html", "notice", "We moved."),
    ]
    assert corpus.rejected == [
        {
            "location": str(folder / "broken.html"),
            "doc_id": None,
            "reason": "not UTF-8 (invalid continuation byte at byte 6)",
        },
        {
            "location": str(folder / "old.html"),
            "doc_id": "old.html",
            "reason": "a page that redirects at once (to kettle.html)",
        },
    ]
    (folder / "broken.html").unlink()
    assert len(list(read_corpus("textdir", str(folder), on_bad_row="error").docs)) == 5


GUIDE = """# Guide

Install the tool with pip and run it once.

## Usage

Run the command on a folder of notes to index them.

```python
# not a heading

print("hi")
```

## Limits

It reads at most one million characters of a file. Longer files are rejected rows with their reason.
"""


def test_a_long_markdown_file_is_split_between_paragraphs_and_headings_and_keeps_its_title(tmp_path):
    (tmp_path / "guide.md").write_text(GUIDE)
    (tmp_path / "short.md").write_text("# Short\n\nA note of fewer words than a part holds.\n")
    corpus = clean_documents(
        read_corpus("textdir", str(tmp_path)),
        min_chars=1,
        on_bad_row="error",
        lang="en",
        domain=None,
        split_words=14,
    )
    docs = [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs]
    assert docs == [
        ("guide.md#1", "Guide", "# Guide\n\nInstall the tool with pip and run it once."),
        ("guide.md#2", "Guide", "## Usage\n\nRun the command on a folder of notes to index them."),
        # The fence holds a blank line and a "# " line: it stays one block, and no heading starts there.
        ("guide.md#3", "Guide", '```python\n# not a heading\n\nprint("hi")\n```'),
        # A section longer than a part is cut between sentences, its heading kept with the first.
        ("guide.md#4", "Guide", "## Limits\n\nIt reads at most one million characters of a file."),
        ("guide.md#5", "Guide", "Longer files are rejected rows with their reason."),
        ("short.md", "Short", "# Short\n\nA note of fewer words than a part holds.\n"),
    ]
    assert corpus.split == {"documents": 1, "parts": 5}
    assert " ".join(text for _, _, text in docs[:5]).split() == GUIDE.split()


@pytest.mark.parametrize("max_words", [1, 2, 3, 7, 50])
def test_split_text_loses_no_word_and_keeps_every_part_within_the_limit(max_words):
    text = GUIDE + "\n" + " ".join(["a-very-long-sentence-without-an-end"] * 9) + "\n\n# Last\n"
    parts = split_text(text, max_words)
    assert " ".join(parts).split() == text.split()
    assert max(len(p.split()) for p in parts) <= max_words
    assert all(p.strip() for p in parts)


def test_code_is_never_split_and_a_parts_id_that_clashes_with_a_document_is_bad_input():
    words = " ".join(f"w{i}" for i in range(30))

    def corpus(*docs: tuple[str, str]) -> Corpus:
        return Corpus(
            [
                {
                    "doc_id": doc_id,
                    "title": "",
                    "text": text,
                    "source": f"jsonl:c.jsonl:{line}",
                    "domain": None,
                }
                for line, (doc_id, text) in enumerate(docs, start=1)
            ]
        )

    code = clean_documents(
        corpus(("f", words)), min_chars=1, on_bad_row="error", lang="en", domain="code", split_words=10
    )
    assert [d["doc_id"] for d in code.docs] == ["f"] and code.split == {"documents": 0, "parts": 0}
    clash = clean_documents(
        corpus(("a", words), ("a#2", "another text")),
        min_chars=1,
        on_bad_row="error",
        lang="en",
        domain=None,
        split_words=10,
    )
    with pytest.raises(CorpusError, match=r"^c\.jsonl:2: duplicate doc_id with other text \('a#2'\)$"):
        list(clash.docs)


def test_a_record_with_a_title_and_no_text_is_a_document_of_its_title(tmp_path):
    # Debian's package list, as a catalog: 16 of its 710 packages state only a one-line description.
    catalog = tmp_path / "packages.jsonl"
    records = [
        {"_id": "kpt", "title": "Google Cloud CLI kpt component for Kubernetes", "text": ""},
        {"_id": "cbt", "title": "Google Cloud CLI cbt", "text": "  \n"},
        {"_id": "none", "title": "", "text": ""},
        # A null text, as JSON writes it and as a Parquet column's missing value reads, is an empty one.
        {"_id": "gke", "title": "Google Cloud CLI GKE authentication plugin", "text": None},
        {"_id": "null", "title": None, "text": None},
        {"_id": "ed", "title": "classic UNIX line editor", "text": "ed is a line-oriented text editor."},
    ]
    catalog.write_text("".join(json.dumps(record) + "\n" for record in records))
    corpus = clean_documents(
        read_corpus("jsonl", str(catalog)), min_chars=30, on_bad_row="error", lang="en", domain=None
    )
    docs = [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs]
    assert docs == [
        ("kpt", "", "Google Cloud CLI kpt component for Kubernetes"),
        ("gke", "", "Google Cloud CLI GKE authentication plugin"),
        ("ed", "classic UNIX line editor", "ed is a line-oriented text editor."),
    ]
    # The short title is judged by min_chars like any text; a record with neither is empty.
    assert [(r["location"].split(":")[-1], r["reason"]) for r in corpus.rejected] == [
        ("2", "text shorter than 30 characters"),
        ("3", "empty text"),
        ("5", "empty text"),
    ]


def test_a_dataset_in_shards_is_read_from_its_folder_file_after_file(tmp_path):
    data = tmp_path / "kettles" / "data"  # as a dataset repository holds its shards
    data.mkdir(parents=True)
    for shard, ids in enumerate([["k1", "k2"], ["k3"]]):
        texts = [f"Kettle {i} boils a litre of water in three minutes." for i in ids]
        pl.DataFrame({"_id": ids, "text": texts}).write_parquet(data / f"train-0000{shard}-of-00002.parquet")
    (tmp_path / "kettles" / "README.md").write_text("# Kettles\n")
    (tmp_path / "kettles" / ".gitattributes").write_text("*.parquet filter=lfs\n")  # hidden: not read
    corpus = read_corpus("parquet", str(tmp_path / "kettles"))
    assert [(d["doc_id"], d["source"]) for d in corpus.docs] == [
        ("k1", f"parquet:{data / 'train-00000-of-00002.parquet'}: row 1"),
        ("k2", f"parquet:{data / 'train-00000-of-00002.parquet'}: row 2"),
        ("k3", f"parquet:{data / 'train-00001-of-00002.parquet'}: row 1"),
    ]
    readme = str(tmp_path / "kettles" / "README.md")
    assert corpus.rejected == [
        {"location": readme, "doc_id": None, "reason": "not a .parquet file (docs.source: parquet)"}
    ]
    (data / "extra.jsonl.gz").write_bytes(gzip.compress(b'{"_id": "k4", "text": "A kettle of glass."}\n'))
    assert [d["doc_id"] for d in read_corpus("jsonl", str(data)).docs] == ["k4"]  # compressed, as streamed
    (data / "more.json.gz").write_bytes(gzip.compress(b'[{"_id": "k5", "text": "A kettle of steel."}]'))
    assert [d["doc_id"] for d in read_corpus("json", str(data)).docs] == ["k5"]
    with pytest.raises(
        CorpusError, match=r"data: no \.csv or \.tsv file in the folder \(docs\.source: csv\)"
    ):
        list(read_corpus("csv", str(data)).docs)


def test_a_compressed_page_is_read_as_its_page(tmp_path):
    docs = tmp_path / "doc" / "kettle"  # as a Debian package's documentation is installed
    docs.mkdir(parents=True)
    (docs / "README.md.gz").write_bytes(gzip.compress(b"# Kettle\n\nIt boils a litre in three minutes.\n"))
    (docs / "NEWS.txt.bz2").write_bytes(bz2.compress(b"Version 2 whistles when the water boils.\n"))
    (docs / "manual.pdf.xz").write_bytes(lzma.compress(pdf_bytes([["Descale it monthly."]], title="Manual")))
    (docs / "changelog.gz").write_bytes(gzip.compress(b"kettle (2.0) stable; urgency=low\n"))
    (docs / "usage.html.gz").write_bytes(b"<html><p>not gzip at all</p></html>")  # misnamed
    (docs / "logo.svg.gz").write_bytes(gzip.compress(b"<svg/>"))
    corpus = read_corpus("textdir", str(tmp_path / "doc"), on_bad_row="skip")
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("kettle/NEWS.txt.bz2", "NEWS", "Version 2 whistles when the water boils.\n"),
        ("kettle/README.md.gz", "Kettle", "# Kettle\n\nIt boils a litre in three minutes.\n"),
        ("kettle/manual.pdf.xz", "Manual", "Descale it monthly."),
    ]
    reads = (
        "textdir reads .txt, .md, .markdown, .mdx, .rst, .adoc, .asciidoc, .tex, .ltx, .ipynb, .pdf, .docx,"
        " .odt, .pptx, .epub, .html and .htm"
    )
    assert [(row["location"], row["reason"]) for row in corpus.rejected] == [
        (
            str(docs / "changelog.gz"),
            f"unsupported file type '.gz' ({reads}, each plain or compressed: .gz, .bz2, .xz)",
        ),
        (str(docs / "logo.svg.gz"), "an asset, not a page ('.svg')"),
        (str(docs / "usage.html.gz"), "cannot be read (Not a gzipped file (b'<h'))"),
    ]


def toy_beir(folder: Path, qrels: str) -> Path:
    """Three documents (d2 titled), two queries and the dev judgments ``qrels``."""
    docs = [{"_id": f"d{i}", "title": "T" if i == 2 else "", "text": f"doc {i}"} for i in range(3)]
    queries = [{"_id": "q1", "text": "which doc"}, {"_id": "q2", "text": "x"}]
    return write_beir(folder, docs, queries, {"dev": qrels})


def test_beir_folder_is_a_corpus_and_an_eval_set_over_the_whole_corpus(tmp_path):
    folder = toy_beir(tmp_path / "toy", "q1\td2\t1\nq1\td0\t0\n")
    corpus = read_corpus("beir", str(folder))
    assert len(list(corpus.docs)) == 3 and corpus.judgments == []  # queries only ever serve evaluation
    eval_set = read_beir_set(folder, "dev")
    assert eval_set.name == "toy"
    assert eval_set.corpus == {"d0": "doc 0", "d1": "doc 1", "d2": "T\ndoc 2"}
    # q2 has no positive judgment and q1's zero-score pair is not relevant.
    assert eval_set.queries == {"q1": "which doc"} and eval_set.relevant == {"q1": {"d2"}}
    assert read_beir_set(folder, "dev", name="mine").name == "mine"


@pytest.mark.parametrize(
    ("qrels", "message"),
    [("q9\td2\t1\n", "dev.tsv:2: bad judgment"), ("q1\td2\t1\nq1\td7\t1\n", "dev.tsv:3: bad judgment")],
)
def test_beir_judgment_of_an_unknown_query_or_document_names_the_line(tmp_path, qrels, message):
    folder = toy_beir(tmp_path / "toy", qrels)
    with pytest.raises(CorpusError, match=message):
        read_beir_set(folder, "dev")
    with pytest.raises(CorpusError, match=r"test\.tsv: no such qrels split"):
        read_beir_set(folder, "test")


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("corpus.jsonl", '{"_id": "d0", "text": "other doc"}', r"corpus\.jsonl:4: repeated document id 'd0'"),
        (
            "queries.jsonl",
            '{"_id": "q1", "text": "other query"}',
            r"queries\.jsonl:3: repeated query id 'q1'",
        ),
    ],
)
def test_beir_repeated_id_names_the_line(tmp_path, file, line, message):
    folder = toy_beir(tmp_path / "toy", "q1\td2\t1\n")
    with (folder / file).open("a") as handle:
        handle.write(line + "\n")
    with pytest.raises(CorpusError, match=message):
        read_beir_set(folder, "dev")


def test_beir_qrels_are_read_as_utf8_whatever_the_locale(tmp_path):
    folder = toy_beir(tmp_path / "toy", "")
    (folder / "queries.jsonl").write_text('{"_id": "q\u00e9", "text": "which doc"}\n', encoding="utf-8")
    (folder / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq\u00e9\td2\t1\n", encoding="utf-8"
    )
    code = (
        f"from synthembed.corpus import read_beir_set; print(ascii(read_beir_set({str(folder)!r}).relevant))"
    )
    ascii_locale = os.environ | {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=ascii_locale, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "{'q\\xe9': {'d2'}}"


def test_a_json_array_of_records_is_a_corpus_and_anything_else_names_what_it_holds(tmp_path):
    export = [
        {"sku": "k1", "name": "Kettle", "description": "Steel, 1.7 litres."},
        {"sku": "k2", "name": "Toaster"},
        {"sku": "k3", "name": "Grill", "description": "Two plates."},
    ]
    (tmp_path / "export.json").write_text(json.dumps(export, indent=2))
    fields = RecordFields(id="sku", title="name", text="description")
    corpus = read_corpus("json", str(tmp_path / "export.json"), on_bad_row="skip", fields=fields)
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("k1", "Kettle", "Steel, 1.7 litres."),
        ("k3", "Grill", "Two plates."),
    ]
    assert corpus.rejected == [
        {
            "location": f"{tmp_path / 'export.json'}: record 2",
            "doc_id": "k2",
            "reason": "missing field 'description'",
        }
    ]
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": export, "total": 3}))
    (tmp_path / "cut.json").write_text(json.dumps(export, indent=2)[:-40])
    for name, message in [
        (
            "wrapped.json",
            r"wrapped\.json: expected a JSON array of records, got an object with keys \['data', 'total'\]",
        ),
        ("cut.json", r"cut\.json:13: invalid JSON \(Expecting ',' delimiter at column 20\)"),
    ]:
        for policy in ("error", "skip"):
            with pytest.raises(CorpusError, match=message):
                list(read_corpus("json", str(tmp_path / name), on_bad_row=policy, fields=fields).docs)


def test_excel_sheets_of_documents_are_read_as_csv_exports_of_them_would_be_and_others_named(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Catalog"
    sheet.append(["sku", "name", "description", "price"])
    sheet.append([1001, "Kettle", "Steel, 1.7 litres.", 39.5])  # a number as Excel stores it
    sheet.append([None, None, None, None])  # an empty row between two blocks
    sheet.append([1002, "Toaster", "Two slots.", 25, "see notes"])  # a value in a column without a name
    sheet.append(["1003", "Grill", 1800, None])  # a number in the text column
    workbook.create_sheet("Notes").append(["Prices", "in euros"])  # not a sheet of documents
    clearance = workbook.create_sheet("Clearance")  # another sheet of them, its columns in its own order
    clearance.append(["description", "sku", "name"])
    clearance.append(["Chrome, 1.5 litres.", 2001, "Old kettle"])
    workbook.save(tmp_path / "catalog.xlsx")
    fields = RecordFields(id="sku", title="name", text="description")
    corpus = read_corpus("xlsx", str(tmp_path / "catalog.xlsx"), on_bad_row="skip", fields=fields)
    assert [(d["doc_id"], d["title"], d["text"]) for d in corpus.docs] == [
        ("1001", "Kettle", "Steel, 1.7 litres."),
        ("1003", "Grill", "1800"),
        ("2001", "Old kettle", "Chrome, 1.5 litres."),
    ]
    where = f"{tmp_path / 'catalog.xlsx'}: sheet"
    assert [(r["location"], r["reason"]) for r in corpus.rejected] == [
        (f"{where} Catalog, row 4", "1 value(s) in columns without a name in the header row"),
        (f"{where} Notes", "no documents: its first row names Prices, in euros"),
    ]
    with pytest.raises(  # the fields not named: BEIR's names are looked for
        CorpusError,
        match=r"catalog\.xlsx: no sheet's first row names an id column \(one of _id, doc_id, id\) and the"
        r" text column \('text'; docs.fields names them\): sheet Catalog: sku, name, description, price;"
        r" sheet Notes: Prices, in euros; sheet Clearance: description, sku, name",
    ):
        list(read_corpus("xlsx", str(tmp_path / "catalog.xlsx")).docs)
    (tmp_path / "renamed.xlsx").write_text("sku,name\n1,Kettle\n")  # a CSV under another name
    with pytest.raises(
        CorpusError,
        match=r"renamed\.xlsx: not a readable Excel workbook \(BadZipFile: File is not a zip file\)",
    ):
        list(read_corpus("xlsx", str(tmp_path / "renamed.xlsx")).docs)


def test_compressed_files_are_read_as_their_plain_copies_and_a_damaged_one_names_its_line(tmp_path):
    plain = toy_beir(tmp_path / "plain", "q1\td2\t1\n")
    packed = tmp_path / "packed"
    (packed / "qrels").mkdir(parents=True)
    # BEIR's sets on the Hugging Face Hub come as corpus.jsonl.gz and queries.jsonl.gz
    for name, compress, suffix in [
        ("corpus.jsonl", gzip.compress, ".gz"),
        ("queries.jsonl", lzma.compress, ".xz"),
        ("qrels/dev.tsv", bz2.compress, ".bz2"),
    ]:
        (packed / f"{name}{suffix}").write_bytes(compress((plain / name).read_bytes()))
    assert vars(read_beir_set(packed, "dev")) == vars(read_beir_set(plain, "dev")) | {"name": "packed"}
    assert list(read_corpus("beir", str(packed)).docs) == [
        doc | {"source": doc["source"].replace(str(plain / "corpus.jsonl"), str(packed / "corpus.jsonl.gz"))}
        for doc in read_corpus("beir", str(plain)).docs
    ]
    rows = b"id;title;text\r\n1;Kettle;Steel, 1.7 litres.\r\n2;Toaster;Two slots.\r\n"
    (tmp_path / "catalog.csv.gz").write_bytes(gzip.compress(BOM + rows))
    assert [(d["doc_id"], d["text"]) for d in read_corpus("csv", str(tmp_path / "catalog.csv.gz")).docs] == [
        ("1", "Steel, 1.7 litres."),
        ("2", "Two slots."),
    ]
    lines = b"".join(b'{"_id": "%d", "text": "document number %d"}\n' % (i, i) for i in range(2000))
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(lines)[:-2000])  # a download cut short
    (tmp_path / "not.jsonl.gz").write_bytes(lines)
    for name, message in [
        ("cut.jsonl.gz", r"cut\.jsonl\.gz:\d+: cannot be read \(Compressed file ended before"),
        ("not.jsonl.gz", r"not\.jsonl\.gz:1: cannot be read \(Not a gzipped file"),
    ]:
        for policy in ("error", "skip"):  # not a bad row: nothing after it can be read
            with pytest.raises(CorpusError, match=message):
                list(read_corpus("jsonl", str(tmp_path / name), on_bad_row=policy).docs)
    with pytest.raises(CorpusError, match=r"corpus\.jsonl: no corpus in BEIR folder"):
        read_corpus("beir", str(tmp_path / "packed" / "qrels"))


def test_zero_score_judgments_are_not_relevant_to_either_reader(tmp_path):
    folder = toy_beir(tmp_path / "toy", "q1\td2\t1\nq1\td0\t0\nq2\td1\t0\n")
    beir = read_beir_set(folder, "dev")
    judgments = pl.DataFrame(
        {
            "eval_set": ["toy"] * 3,
            "query_id": ["q1", "q1", "q2"],
            "query": ["which doc", "which doc", "x"],
            "doc_id": ["d2", "d0", "d1"],
            "score": [1, 0, 0],
        }
    )
    assert (
        eval_sets(judgments)["toy"] == (beir.queries, beir.relevant) == ({"q1": "which doc"}, {"q1": {"d2"}})
    )


def test_sampling_is_seeded_and_written_in_id_order_one_range_at_a_time(fake_stdlib, tmp_path):
    docs = read_stdlib(fake_stdlib).docs
    count, first = write_documents(Corpus(docs), tmp_path / "a.parquet", 2, seed=3)
    _, again = write_documents(Corpus(docs), tmp_path / "b.parquet", 2, seed=3)
    assert count == len(docs) and len(first) == 2 and first.to_list() == again.to_list()
    # a seeded draw, not the first two read (mathish.add, mathish.Stack.push): another seed draws others
    assert first.to_list() == ["mathish.Stack.push", "mathish.add"]
    _, other = write_documents(Corpus(docs), tmp_path / "c.parquet", 2, seed=1)
    assert other.to_list() == ["mathish.Stack.push", "mathish.Stack.size"]
    written = pl.read_parquet(tmp_path / "a.parquet")
    assert written["doc_id"].to_list() == sorted(first.to_list())
    # Spilled in chunks of two documents, written in ranges of one: still the whole corpus, in id order.
    spilled = tmp_path / "spilled"
    assert spill_documents(iter(docs), spilled, chunk_rows=2) == len(docs)
    assert len(list(spilled.iterdir())) == -(-len(docs) // 2)
    ids = sampled_ids(spilled, None, seed=0)
    write_parquet_row_groups(
        sorted_documents(spilled, ids, chunk_rows=1), DOC_SCHEMA, tmp_path / "all.parquet"
    )
    everything = pl.read_parquet(tmp_path / "all.parquet")
    assert everything["doc_id"].to_list() == sorted(d["doc_id"] for d in docs)
    assert (
        everything.drop("lang", "domain").sort("doc_id").rows()
        == pl.DataFrame(docs).select("doc_id", "title", "text", "source").sort("doc_id").rows()
    )


def test_scifact_dev_split_loads_whole():
    """SciFact's dev split as BEIR distributes it, where SYNTHEMBED_SCIFACT_DEV names its folder."""
    scifact = os.environ.get("SYNTHEMBED_SCIFACT_DEV")
    if not scifact:
        pytest.skip("SYNTHEMBED_SCIFACT_DEV names no SciFact dev folder")
    eval_set = read_beir_set(Path(scifact), "dev")
    assert len(eval_set.corpus) == 5183
    assert len(eval_set.queries) == 809 and sum(len(r) for r in eval_set.relevant.values()) == 919
