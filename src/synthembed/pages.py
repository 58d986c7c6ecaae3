"""Pages of a text folder as the rest of the ``docs`` stage reads them: a title and a text in Markdown.

Markdown is read as it renders (no front matter, no HTML comments, no site generator's marks, one kind of
heading; MDX without its JSX), a notebook as the Markdown of its cells, reStructuredText with its section
titles as Markdown headings, AsciiDoc as Asciidoctor renders it, LaTeX as its text and structure, a PDF
as its text layer in paragraphs and headings without page furniture, a Word or OpenDocument text as its
paragraphs, lists and tables, a presentation as its slides' titles, text, tables and speaker notes, an
EPUB book as its chapters, an HTML page as the text a reader sees. ``read_page`` picks the reader by the
file's suffix.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import math
import posixpath
import re
import textwrap
import tomllib
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from operator import itemgetter
from typing import IO, Any, TypeVar
from urllib.parse import unquote
from xml.etree import ElementTree

import docx
import pptx
import pypdf
import yaml
from docx.table import Table
from docx.text.paragraph import Paragraph
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape
from pptx.slide import Slide
from pptx.text.text import TextFrame
from pylatexenc.latex2text import EnvironmentTextSpec, LatexNodes2Text, MacroTextSpec, SpecialsTextSpec
from pylatexenc.latex2text import get_default_latex_context_db as get_default_latex_text_context
from pylatexenc.latexwalker import (
    LatexCharsNode,
    LatexCommentNode,
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexNode,
    LatexSpecialsNode,
    LatexWalker,
)
from pylatexenc.latexwalker import get_default_latex_context_db as get_default_latex_walker_context
from pylatexenc.macrospec import EnvironmentSpec, LatexContextDb, MacroSpec, std_macro

T = TypeVar("T")
HTML_SUFFIXES = (".html", ".htm")
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
ADOC_SUFFIXES = (".adoc", ".asciidoc")
LATEX_SUFFIXES = (".tex", ".ltx")
TEXT_SUFFIXES = (
    ".txt",
    *MARKDOWN_SUFFIXES,
    ".rst",
    *ADOC_SUFFIXES,
    *LATEX_SUFFIXES,
    ".ipynb",
    ".pdf",
    ".docx",
    ".odt",
    ".pptx",
    ".epub",
    *HTML_SUFFIXES,
)
READ_SUFFIXES = ", ".join(TEXT_SUFFIXES[:-1]) + f" and {TEXT_SUFFIXES[-1]}"
# the assets beside the pages of a site, a docs folder or a paper: images, fonts, styles, scripts, media
ASSET_SUFFIXES = {
    *(".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".bmp", ".tif", ".tiff"),
    *(".woff", ".woff2", ".ttf", ".otf", ".eot", ".css", ".js", ".map", ".mp3", ".mp4", ".webm", ".wav"),
    # a LaTeX project's classes, styles, bibliographies and build files
    *(".cls", ".sty", ".bst", ".bib", ".bbl", ".aux", ".log", ".toc", ".out", ".blg", ".synctex"),
}
MARKDOWN_HEADING = re.compile(r"#{1,6}\s")
# an ATX heading and its text, without a closing run of # ("## Install ##"; "# C#" keeps its #)
ATX_HEADING = re.compile(r"^#{1,6}\s+(.+?)(?:\s+#+)?\s*$")
CODE_FENCE = re.compile(r"(`{3,}|~{3,})(.*)")  # its marks, then its language
HTML_COMMENT = r"<!--.*?-->"
# what MDX adds to Markdown: JSX comments, ESM blocks (import and export statements at a line's start, up to
# a blank line), and JSX tags (a component's or an HTML element's, their attributes' strings and {...}
# expressions included; fragments too)
MDX_MARKUP = (
    r"\{/\*.*?\*/\}"
    r"|^(?:import|export)\s.*?(?=\n[ \t]*\n|\n?\Z)"
    r"|</?(?:[A-Za-z][\w.:-]*(?:\s(?:[^<>{}\"']|\"[^\"]*\"|'[^']*'|\{(?:[^{}]|\{[^{}]*\})*\})*)?/?)?>"
)
INLINE_CODE = r"`[^`\n]+`"
# an admonition's fence (Docusaurus, VitePress, MyST, Pandoc's fenced divs): ":::tip", ":::note[Title]",
# "::: warning Title", "::: {.note}", ":::"; and an explicit heading id ("## Setup {#setup}")
ADMONITION_FENCE = re.compile(r"\s*:{3,}\s*(?:\{[^}]*\}|[A-Za-z][\w-]*)?\s*(?:\[(.*)\]|(.*))\s*")
HEADING_ID = re.compile(r"(#{1,6}\s.*?)\s*\{#[\w.:-]+\}\s*")


class NotAPage(Exception):
    """A file that a reader never sees as a page (an HTML page that redirects at once): a rejected row
    whatever ``docs.on_bad_row`` says, as it is not malformed."""


class UnreadableFile(ValueError):
    """A file of a folder that cannot be read as its type says, at ``line`` where one is to blame."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.line = line


def fenced_lines(text: str) -> Iterator[tuple[str, bool]]:
    """Each line of a text, with whether it belongs to a fenced code block (its fences included). As in
    CommonMark, a block ends at a fence of its opening fence's character, at least as long and with no
    language after it, so a longer fence holds shorter ones (``fenced_code``).

    >>> [fenced for _, fenced in fenced_lines("# Run\\n```sh\\n# a comment\\n```\\nDone.")]
    [False, True, True, True, False]
    >>> [fenced for _, fenced in fenced_lines("````md\\n```sh\\n# a comment\\n```\\n````\\n# Done")]
    [True, True, True, True, True, False]
    """
    fence = None
    for line in text.splitlines():
        marks = CODE_FENCE.match(line.strip())
        yield line, fence is not None or marks is not None
        if marks and fence is None:
            fence = marks[1]
        elif marks and marks[1][0] == fence[0] and len(marks[1]) >= len(fence) and not marks[2].strip():
            fence = None


def fenced_code(code: str, language: str = "") -> str:
    """A fenced code block of ``code``, fenced by more backticks than it holds in a row (three at least),
    so that no line of it ends the block.

    >>> print(fenced_code('print("```")', "python"))
    ````python
    print("```")
    ````
    """
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", code)), default=0))
    return f"{fence}{language}\n{code}\n{fence}"


def as_text(text: str) -> str:
    """A document's text (not Markdown: a web page's, a Word document's, a PDF's) as Markdown writes it:
    a ``#`` at a line's start that would make it a heading escaped (a shell comment in inline code, a
    table's "#" column).

    >>> print(as_text("# apt-get install libtalloc-dev\\n#1 in sales"))
    \\# apt-get install libtalloc-dev
    #1 in sales
    """
    return re.sub(f"^(?={MARKDOWN_HEADING.pattern})", r"\\", text, flags=re.MULTILINE)


def first_heading(markdown: str) -> str | None:
    """The text of a Markdown text's first ``#`` heading (without a closing run of ``#``), not a ``#``
    line of a fenced code block.

    >>> first_heading("```sh\\n# fetch\\n```\\n## Install ##\\nRun it.")
    'Install'
    """
    headings = (
        match[1] for ln, fenced in fenced_lines(markdown) if not fenced and (match := ATX_HEADING.match(ln))
    )
    return next(headings, None)


# a title property that names a file: what a word processor or a print driver puts there by default
FILE_NAME = re.compile(r"\.(?:docx?|odt|rtf|pdf|e?ps|dvi|tex|indd|qxd|pptx?|xlsx?|txt)$", re.IGNORECASE)
# the title properties applications give a new file
DEFAULT_TITLES = {"untitled", "presentation", "powerpoint presentation"}


def document_title(stated: str | None) -> str | None:
    """A document's stated title (a PDF's, Word document's or presentation's title property, an HTML
    page's ``<title>``), or None where it states none or names a file or a job, not the document: one
    word holding a digit (a producer's "Untitled-1", "Document1", a typesetting job's
    "sag-39-3-4-0902-21:sag-0"), an application's default ("Untitled", "PowerPoint Presentation"), or a
    file's name ("Microsoft Word - draft.docx").

    >>> titles = ["Folding in the cell ", "Document1", "Microsoft Word - draft.docx", "Presentation", ""]
    >>> [document_title(title) for title in titles]
    ['Folding in the cell', None, None, None, None]
    """
    title = (stated or "").strip()
    job = len(title.split()) == 1 and any(character.isdigit() for character in title)
    default = title.casefold() in DEFAULT_TITLES
    return None if not title or job or default or FILE_NAME.search(title) else title


def without_marks(markdown: str, marks: str, shown: Callable[[re.Match[str]], str] | None = None) -> str:
    """A Markdown text without what the pattern ``marks`` matches outside its code (fenced blocks and
    inline code spans show markup as written), or with what ``shown`` makes of each match in its place;
    a line the removed marks filled goes with it.

    >>> page = "Intro.\\n\\n<!-- YAML\\nadded: v8.4.0\\n-->\\n\\nIt closes. <!-- a note -->\\n"
    >>> without_marks(page + "Write `<!-- -->`.\\n```html\\n<!-- kept -->\\n```", HTML_COMMENT)
    'Intro.\\n\\nIt closes.\\nWrite `<!-- -->`.\\n```html\\n<!-- kept -->\\n```'
    """
    pattern = re.compile(f"({INLINE_CODE})|{marks}", re.DOTALL | re.MULTILINE)

    def marked(text: str) -> bool:
        return any(match[1] is None for match in pattern.finditer(text))

    def in_place(match: re.Match[str]) -> str:  # \0: where a mark was removed
        return match[1] or (shown(match) if shown else "") or "\0"

    if not marked(markdown):
        return markdown
    kept = []
    for fenced, lines in itertools.groupby(fenced_lines(markdown), itemgetter(1)):
        run = "\n".join(line for line, _ in lines)
        if not fenced and (replaced := pattern.sub(in_place, run)) != run:
            visible = []
            for line in replaced.split("\n"):
                text = re.sub(r"^\0+[ \t]*|[ \t]*\0+", "", line).rstrip()  # no space left twice, or first
                if text.strip() or "\0" not in line:  # a line the marks filled goes with it
                    visible.append(text)
            run = re.sub(r"\n{3,}", "\n\n", "\n".join(visible))
        kept.append(run)
    return "\n".join(kept).strip("\n")


def without_html_comments(markdown: str) -> str:
    """A Markdown text as a reader sees it rendered: without its HTML comments (in a page of Node.js's
    API reference, the YAML of each method's history), but with those in code, which shows HTML.

    >>> without_html_comments("Intro. <!-- a note -->\\n<!--\\ndraft\\n-->\\nEnd.")
    'Intro.\\nEnd.'
    """
    return without_marks(markdown, HTML_COMMENT)


# a link reference definition ("[node]: https://nodejs.org 'Node'"; not a footnote's "[^1]: ..."): its label
MARKDOWN_DEFINITION = re.compile(
    r"^ {0,3}\[(?!\^)([^\]\n]+)\]:[ \t]*\S+(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?[ \t]*$",
    re.MULTILINE,
)
# a link or an image (inline, a reference, or a shortcut to a definition; its text on one line or more,
# with one level of brackets inside; not an escaped "\["), a wiki link ("[[Page]]", "[[Page|shown text]]",
# Obsidian's embed "![[picture.png]]"), an autolink ("<https://nodejs.org>"); and first a link reference
# definition
MARKDOWN_LINKS = (
    f"{MARKDOWN_DEFINITION.pattern}|"
    r"(?P<wiki_embed>!)?\[\[(?P<page>[^\[\]|\n]+)(?:\|(?P<alias>[^\[\]\n]+))?\]\]"
    r"|(?P<image>!)?(?<!\\)\[(?P<text>(?:[^\[\]\n]|\n(?![ \t]*\n)|\[[^\[\]\n]*\])*)\]"
    r"(?:(?P<target>\((?:[^()\s]|\([^()\s]*\))*(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\))|\[(?P<label>[^\]\n]*)\])?"
    r"|<(?P<url>[A-Za-z][\w+.-]+:[^<>\s]+)>"
)


def markdown_links_as_text(markdown: str) -> str:
    """A Markdown text as a reader sees its links: a link as its text, an autolink as its address, a wiki
    link as its page or the text it shows; images and link reference definitions left out, as an HTML
    page's are (``html_text``). A bracketed text that refers to no definition (a task's ``[ ]``, an index
    ``[0]``) and code stay as written.

    >>> page = "See [the `fs` guide](fs.md#top 'Files') and [Buffer][], ![a kettle](k.png) [x].\\n\\n"
    >>> page += "Vault: [[Kettle care|kettles]], [[Scale]] ![[scale.png]], <https://nodejs.org>.\\n\\n"
    >>> print(markdown_links_as_text(page + "[Buffer]: buffer.md\\n`[x](y)`"))
    See the `fs` guide and Buffer, [x].
    <BLANKLINE>
    Vault: kettles, Scale, https://nodejs.org.
    <BLANKLINE>
    `[x](y)`
    """
    labels = {
        " ".join(match[1].casefold().split())
        for line, fenced in fenced_lines(markdown)
        if not fenced and (match := MARKDOWN_DEFINITION.match(line))
    }

    def shown(link: re.Match[str]) -> str:
        if link["page"] is not None:
            return "" if link["wiki_embed"] else (link["alias"] or link["page"]).strip()
        if link["url"] is not None:
            return link["url"]
        if link["text"] is None:  # a definition
            return ""
        label = link["label"] or link["text"]  # a full reference names its label; others are their text
        if link["target"] is None and " ".join(label.casefold().split()) not in labels:
            return link[0]
        return "" if link["image"] else link["text"]

    return without_marks(markdown, MARKDOWN_LINKS, shown)


def mdx_markdown(mdx: str) -> str:
    """The Markdown of an MDX page: without its ESM blocks (imports and exports), JSX comments and JSX
    tags, the text inside its elements kept; code as written.

    >>> page = "import Callout from 'nextra/callout'\\n\\n# Tips {/* #tips */}\\n\\n"
    >>> page += '<Callout type="info">\\n  Use `<Callout>` for notes.\\n</Callout>\\n'
    >>> print(mdx_markdown(page + "<Button onClick={() => go()}>Go</Button>"))
    # Tips
    <BLANKLINE>
      Use `<Callout>` for notes.
    Go
    """
    return without_marks(mdx, MDX_MARKUP)


def without_site_marks(markdown: str) -> str:
    """A Markdown page without the marks a site generator reads in it: admonitions' fences (their title
    kept as a line) and explicit heading ids; code as written.

    >>> print(without_site_marks(":::tip[Fast]\\nCache it.\\n:::\\n\\n## Setup {#setup}\\n```\\n:::\\n```"))
    Fast
    Cache it.
    <BLANKLINE>
    ## Setup
    ```
    :::
    ```
    """
    lines: list[str] = []
    changed = dropped = False
    for line, fenced in fenced_lines(markdown):
        fence = None if fenced else ADMONITION_FENCE.fullmatch(line)
        heading = None if fenced else HEADING_ID.fullmatch(line)
        changed = changed or bool(fence or heading)
        if fence:
            title = (fence[1] if fence[1] is not None else fence[2] or "").strip()
            lines += [title] if title else []
            dropped = not title
        elif not (dropped and not line.strip() and lines and not lines[-1].strip()):  # no blank line twice
            lines.append(heading[1] if heading else line)
            dropped = dropped and not line.strip()
    return "\n".join(lines).strip("\n") if changed else markdown


FRONT_MATTER = re.compile(
    r"\A(?:---[ \t]*\r?\n(?P<yaml>(?:[^\n]*\n)*?)(?:---|\.\.\.)"
    r"|\+\+\+[ \t]*\r?\n(?P<toml>(?:[^\n]*\n)*?)\+\+\+)[ \t]*(?:\r?\n|\Z)"
)


def front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    """The metadata a static site generator reads at the top of a Markdown page (YAML between ``---``
    lines: Jekyll, Hugo, Docusaurus, MkDocs; TOML between ``+++``: Hugo) and the page without it. A block
    that is not a mapping is the page's own text: a rule, a line and a rule make a setext heading.

    >>> front_matter("---\\ntitle: npm-access\\nsection: 1\\n---\\n\\n### Synopsis\\n")
    ({'title': 'npm-access', 'section': 1}, '\\n### Synopsis\\n')
    >>> front_matter('+++\\ntitle = "Install"\\n+++\\nRun it.')
    ({'title': 'Install'}, 'Run it.')
    >>> front_matter("---\\nA heading\\n---\\nText.")
    ({}, '---\\nA heading\\n---\\nText.')
    >>> try:
    ...     front_matter("---\\ntitle: a: b\\n---\\nText.")
    ... except UnreadableFile as err:
    ...     print(err.line, err, sep="\\n")
    2
    front matter is not valid YAML: mapping values are not allowed here (at line 2, column 9)
    """
    match = FRONT_MATTER.match(markdown)
    if match is None:
        return {}, markdown
    # A newline stands for the opening delimiter, so the parsers count lines as the page does.
    try:
        if match["toml"] is not None:
            metadata = tomllib.loads("\n" + match["toml"])
        else:
            metadata = yaml.safe_load("\n" + match["yaml"]) or {}
    except tomllib.TOMLDecodeError as err:
        at_line = re.search(r"at line (\d+)", str(err))
        raise UnreadableFile(
            f"front matter is not valid TOML: {err}", int(at_line[1]) if at_line else 1
        ) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (at line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise UnreadableFile(
            f"front matter is not valid YAML: {problem}{where}", mark.line + 1 if mark else 1
        ) from err
    if not isinstance(metadata, dict):
        return {}, markdown
    return metadata, markdown[match.end() :]


SETEXT_UNDERLINE = re.compile(r" {0,3}(=+|-+)[ \t]*")

# a line that cannot be a setext heading's text: code, a heading, a list item, a quote, a table row,
# HTML or a rule
NOT_SETEXT_TEXT = re.compile(r" {4}|\t|\s*(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|>|\||<|[-=_*]{3,}\s*$)")

# a line after which a paragraph starts: an ATX heading or a rule (or a blank line, or code)
BLOCK_END = re.compile(r" {0,3}(?:#{1,6}\s|(?:-{3,}|_{3,}|\*{3,})\s*$)")


def atx_headings(markdown: str) -> str:
    """A Markdown text with its setext headings (a line of text underlined by ``===`` or ``---``) written
    as the ``#`` and ``##`` headings they render as, so that one kind of heading titles, splits and
    pairs a page. A rule after a blank line or a paragraph's second line, and underlines in fenced code,
    stay as they are.

    >>> atx_headings("PyYAML\\n======\\nA parser.\\r\\n\\nUse\\n---\\n```\\nx\\n---\\n```\\n\\n---\\nEnd.")
    '# PyYAML\\nA parser.\\r\\n\\n## Use\\n```\\nx\\n---\\n```\\n\\n---\\nEnd.'
    """
    lines = markdown.splitlines(keepends=True)
    fenced = [in_fence for _, in_fence in fenced_lines(markdown)]

    def heading_text(k: int) -> bool:
        one_line_paragraph = (
            k == 0 or not lines[k - 1].strip() or fenced[k - 1] or BLOCK_END.match(lines[k - 1])
        )
        return (
            one_line_paragraph
            and not fenced[k]
            and bool(lines[k].strip())
            and not NOT_SETEXT_TEXT.match(lines[k])
        )

    kept: list[str] = []
    for i, line in enumerate(lines):
        underline = SETEXT_UNDERLINE.fullmatch(line.rstrip("\r\n"))
        if i and not fenced[i] and underline and heading_text(i - 1):
            text = lines[i - 1].rstrip("\r\n")
            level = "#" if underline[1][0] == "=" else "##"
            kept[-1] = f"{level} {text.strip()}{lines[i - 1][len(text) :]}"  # its own line ending
        else:
            kept.append(line)
    return "".join(kept)


RST_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1+[ \t]*")  # one punctuation character, repeated

# an explicit markup line that is not a comment: a directive, a footnote or citation, a target, a
# substitution definition
RST_MARKUP = re.compile(r"\.\.\s+(?:[\w.+:-]+::|\[|_|\|)")


def rst_as_markdown(rst: str) -> str:
    """A reStructuredText page in the Markdown the rest of the stage reads: a section title (a line
    underlined, or over- and underlined, by one punctuation character repeated at least as long) becomes
    a ``#`` heading, with one ``#`` more for each adornment style the page brings in (Docutils ranks them
    in that order); a comment (a ``..`` line that is not a directive, footnote, target or substitution,
    and the lines indented under it) is dropped, as it does not render; the rest stays as written.

    >>> page = (
    ...     ".. Licensed under the BSD license.\\n   See LICENSE.\\n\\n=====\\nCMake\\n=====\\n\\n"
    ...     "add_library\\n-----------\\n\\n.. code-block:: cmake\\n\\n  add_library(<name>)\\n\\n----\\n\\n"
    ...     "Options\\n^^^^^^^\\n\\nSee also\\n--------\\n"
    ... )
    >>> print(rst_as_markdown(page))
    <BLANKLINE>
    # CMake
    <BLANKLINE>
    ## add_library
    <BLANKLINE>
    .. code-block:: cmake
    <BLANKLINE>
      add_library(<name>)
    <BLANKLINE>
    ----
    <BLANKLINE>
    ### Options
    <BLANKLINE>
    ## See also
    <BLANKLINE>
    """
    lines = rst.splitlines()

    def indented(k: int) -> bool:
        return k < len(lines) and lines[k][:1].isspace()

    styles: list[tuple[bool, str]] = []
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"\.\.(?:\s|$)", line) and not RST_MARKUP.match(line):
            i += 1
            while i < len(lines) and (indented(i) or (not lines[i].strip() and indented(i + 1))):
                i += 1  # the comment's block, blank lines inside it included
            continue
        after_blank = not kept or not kept[-1].strip()
        following = lines[i + 1 : i + 3]
        if (
            after_blank
            and RST_ADORNMENT.fullmatch(line)
            and len(following) == 2
            and following[0].strip()
            and following[1].rstrip() == line.rstrip()
            and len(line.rstrip()) >= len(following[0].strip())
        ):
            style, title, i = (True, line[0]), following[0].strip(), i + 3
        elif (
            after_blank
            and line.strip()
            and not line[0].isspace()
            and not RST_ADORNMENT.fullmatch(line)
            and following
            and RST_ADORNMENT.fullmatch(following[0])
            and len(following[0].rstrip()) >= len(line.rstrip())
        ):
            style, title, i = (False, following[0][0]), line.strip(), i + 2
        else:
            kept.append(line)
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        kept.append(f"{'#' * min(styles.index(style) + 1, 6)} {title}")
    return "\n".join(kept) + ("\n" if rst.endswith("\n") else "")


# AsciiDoc (Asciidoctor's rules): a delimited block opens and closes with the same line; listing and
# literal blocks are code, a comment block is left out, a passthrough block is HTML, and the others
# (example, sidebar, quote, open, table) hold text
ADOC_DELIMITER = re.compile(r"-{4,}|\.{4,}|/{4,}|\+{4,}|={4,}|\*{4,}|_{4,}|--|[|,:!]={3,}")
ADOC_SECTION = re.compile(r"(={1,6})[ \t]+(\S.*?)(?:[ \t]+=+)?")
ADOC_UNDERLINE_LEVELS = {"=": 1, "-": 2, "~": 3, "^": 4, "+": 5}  # a two-line title's underline
ADOC_ATTRIBUTE_ENTRY = re.compile(r":(!?)(\w[\w-]*)(!?):(?:[ \t]+(.*))?")
ADOC_BLOCK_ATTRIBUTES = re.compile(r"\[\[.*\]\]|\[(|[#.%\w{,\"'].*)\]")
ADOC_BLOCK_MACRO = re.compile(r"[a-z][\w-]*::\S*?\[.*\]")  # image::, toc::, video::
# a directive read before the blocks, on any line: the page alone cannot resolve an include, and both
# sides of a condition are kept, as one page may be included under either
ADOC_PREPROCESSOR = re.compile(r"(?:include|ifn?def|ifeval|endif)::\S*?\[.*\]")
ADOC_BLOCK_TITLE = re.compile(r"\.(\.?[^ \t.].*)")
ADOC_LIST_ITEM = re.compile(r"[ \t]*(\*{1,5}|\.{1,5}|-|\d+\.)[ \t]+(\S.*)")
ADOC_TERM = re.compile(r"(?!//)[ \t]*([^ \t].*?)(?::{2,4}|;;)(?:[ \t]+(.*))?")
ADOC_ATTRIBUTE_REFERENCE = re.compile(r"(\\)?\{(\w[\w-]*)\}")
# the attributes every document has that stand for a character
ADOC_CHARACTERS = {
    **{"empty": "", "zwsp": "", "sp": " ", "nbsp": "\u00a0", "plus": "+", "amp": "&", "lt": "<", "gt": ">"},
    **{"startsb": "[", "endsb": "]", "vbar": "|", "caret": "^", "asterisk": "*", "tilde": "~"},
    **{"backslash": "\\", "backtick": "`", "two-colons": "::", "two-semicolons": ";;", "cpp": "C++"},
    **{"pp": "++", "quot": '"', "apos": "'", "deg": "\u00b0", "ldquo": "\u201c", "rdquo": "\u201d"},
}
# inline marks as a reader sees them: links and cross references as their text (else their target),
# keys, buttons and menus as their labels; footnotes, images and anchors left out
ADOC_INLINE = (
    r"(?P<left_out>footnote(?:ref)?:[\w-]*\[(?:[^\]\\\n]|\\.)*\]|image:[^\s\[]+\[[^\]\n]*\]"
    r"|anchor:[\w:.-]+\[[^\]\n]*\]|\[\[[\w:.-]+(?:,[^\]\n]*)?\]\])"
    r"|(?:link|xref|mailto):(?P<target>[^\s\[]*)\[(?P<text>[^\]\n]*)\]"
    r"|(?P<url>\b(?:https?|ftp|irc)://[^\s\[<>]+)\[(?P<url_text>[^\]\n]*)\]"
    r"|<<(?P<ref>[^,<>\n]+?)(?:,[ \t]*(?P<ref_text>[^<>\n]+))?>>"
    r"|(?:kbd|btn):\[(?P<label>[^\]\n]*)\]|menu:(?P<menu>[^\s\[]+)\[(?P<item>[^\]\n]*)\]"
    r"|pass:[a-z,]*\[(?P<passed>[^\]\n]*)\]"
)


def adoc_inline_text(match: re.Match[str]) -> str:
    """What a reader sees of an AsciiDoc inline mark that ``ADOC_INLINE`` matched."""
    if (text := match["text"] if match["target"] is not None else match["url_text"]) is not None:
        # a link's text: quoted, or before its named attributes (",window=_blank"), without the caret
        # that opens a new window
        quoted = re.match(r'\s*"((?:[^"\\]|\\.)*)"', text)
        text = quoted[1] if quoted else re.split(r",\s*\w[\w-]*=", text)[0]
        return text.strip().rstrip("^") or match["target"] or match["url"]
    if match["ref"] is not None:
        return match["ref_text"] or match["ref"]
    if match["menu"] is not None:
        return " > ".join(filter(None, [match["menu"].replace("_", " "), match["item"].strip()]))
    return match["label"] or match["passed"] or ""


def adoc_as_markdown(adoc: str) -> tuple[str | None, str]:
    """(its ``doctitle`` attribute, its text in Markdown) of an AsciiDoc page as Asciidoctor renders it:
    section titles (``== Title``, or a title underlined by ``=``, ``-``, ``~``, ``^`` or ``+``) become
    ``#`` headings of their level; listing and literal blocks and indented (literal) paragraphs fenced
    code, in a ``[source]`` block's language; list items ``- `` and ``1. `` lines, a description list's
    term a line of its own; links, cross references, keys and menus their text. Comments, attribute
    entries (their values stand in for their references), block attribute lines, the header's author
    and revision lines, block macros (``image::``, ``toc::``), includes (which a page alone cannot
    resolve), conditional directives (both sides are kept), footnotes, images and delimiters are left
    out. Tables, emphasis and custom macros stay as written.

    >>> page = (
    ...     "= Kettle Guide\\nJ. Doe <jd@example.com>\\n:product: Kettle 2\\n\\n// a draft\\n"
    ...     "The {product} boils water, see <<care,Care>>.\\n\\nCare\\n----\\n\\n[source,python]\\n"
    ...     "----\\n// not a comment here\\nkettle.descale()\\n----\\n\\n* Unplug it.\\n** Let it cool.\\n"
    ...     "+\\n[NOTE]\\n====\\nUse https://example.com/vinegar[vinegar^].footnote:[Or citric acid.]\\n"
    ...     "====\\n\\nLimescale:: the white crust.\\n"
    ... )
    >>> print(adoc_as_markdown(page)[1])
    # Kettle Guide
    <BLANKLINE>
    The Kettle 2 boils water, see Care.
    <BLANKLINE>
    ## Care
    <BLANKLINE>
    ```python
    // not a comment here
    kettle.descale()
    ```
    <BLANKLINE>
    - Unplug it.
      - Let it cool.
    Use vinegar.
    <BLANKLINE>
    Limescale
    the white crust.
    """
    lines = adoc.splitlines()
    attributes = dict(ADOC_CHARACTERS)
    kept: list[str] = []
    language = ""  # a [source] block attribute's, for the block after it
    # block_start: the line may open a block; described: a term without its description went before, so
    # the next paragraph, indented or not, is that description, not a literal one
    block_start, in_header, described = True, False, False

    def substituted(line: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match[1]:  # an escaped reference stays as written, without its backslash
                return match[0][1:]
            return attributes.get(match[2].lower(), match[0])

        return ADOC_ATTRIBUTE_REFERENCE.sub(value, line)

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        if in_header and line and not line.startswith(":"):
            continue  # the header's author and revision lines
        if not line.strip():
            kept.append("")
            block_start, in_header, language = True, False, ""
            continue
        if line.startswith("//") and not line.startswith("////"):
            continue
        if block_start and (entry := ADOC_ATTRIBUTE_ENTRY.fullmatch(line)):
            if entry[1] or entry[3]:
                attributes.pop(entry[2].lower(), None)
            else:
                attributes[entry[2].lower()] = substituted(entry[4] or "")
            continue
        if block_start and (attribute_list := ADOC_BLOCK_ATTRIBUTES.fullmatch(line)):
            positional = [part.strip() for part in (attribute_list[1] or "").split(",")]
            style = re.split(r"[#.%]", positional[0])[0]
            if style in ("source", "") and len(positional) > 1 and "=" not in positional[1]:
                language = positional[1]
            continue
        if ADOC_PREPROCESSOR.fullmatch(line) or (block_start and ADOC_BLOCK_MACRO.fullmatch(line)):
            continue
        if ADOC_DELIMITER.fullmatch(line):
            if line[0] in "-./+" and line != "--":  # a verbatim block: its lines as written
                end = next((k for k in range(i, len(lines)) if lines[k].rstrip() == line), len(lines))
                if line[0] in "-.":
                    kept.append(fenced_code("\n".join(lines[i:end]), language))
                elif line[0] == "+":  # passed through to the page's HTML
                    kept.append(html_text("\n".join(lines[i:end]))[1])
                i = end + 1
            block_start, language = True, ""  # the other blocks' delimiters, opening or closing, go
            continue
        level, title = 0, ""
        if block_start and (section := ADOC_SECTION.fullmatch(line)):
            level, title = len(section[1]), section[2]
        elif (
            block_start
            and i < len(lines)
            and line.lstrip()[0] != "."
            and re.search(r"\w", line)
            and (underline := lines[i].rstrip())
            and underline[0] in ADOC_UNDERLINE_LEVELS
            and underline == underline[0] * len(underline)
            and abs(len(underline) - len(line)) < 2
        ):
            level, title = ADOC_UNDERLINE_LEVELS[underline[0]], line.strip()
            i += 1
        if level:
            in_header = level == 1 and not any(kept_line.strip() for kept_line in kept)
            kept.append(f"{'#' * level} {substituted(title)}")
            block_start, language = True, ""
            continue
        if block_start and (block_title := ADOC_BLOCK_TITLE.fullmatch(line)):
            kept.append(substituted(block_title[1]))
            continue
        indented = not described and line[0].isspace()
        if block_start and indented and not (ADOC_LIST_ITEM.fullmatch(line) or ADOC_TERM.fullmatch(line)):
            end = next((k for k in range(i, len(lines)) if not lines[k].strip()), len(lines))
            paragraph = textwrap.dedent("\n".join(lines[i - 1 : end])).rstrip()  # a literal paragraph
            kept.append(fenced_code(paragraph, language))
            i, language = end, ""
            continue
        if line == "+":  # a list continuation: a block attached to the item follows
            block_start = True
            continue
        described = False
        if item := ADOC_LIST_ITEM.fullmatch(line):
            marker = item[1]
            if marker[0] in "*.":  # its depth told by the marker's length
                line = "  " * (len(marker) - 1) + ("- " if marker[0] == "*" else "1. ") + item[2]
            else:  # "-" and "3." as Markdown writes them
                line = f"{marker} {item[2]}"
        elif term := ADOC_TERM.fullmatch(line):
            line, described = "\n".join(filter(None, [term[1], term[2]])), not term[2]
        kept.append(substituted(line.removesuffix(" +")).rstrip())
        block_start, language = False, ""
    markdown = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
    return attributes.get("doctitle"), without_marks(markdown, ADOC_INLINE, adoc_inline_text)


LATEX_DIVISIONS = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
LATEX_CODE_ENVIRONMENTS = [
    "verbatim",
    "verbatim*",
    "Verbatim",
    "BVerbatim",
    "LVerbatim",
    "lstlisting",
    "minted",
]
# a code environment ends at the first \end of its name: its text is never LaTeX, so it is taken out before
# the rest is parsed
LATEX_CODE = re.compile(
    rf"\\begin\{{({'|'.join(map(re.escape, LATEX_CODE_ENVIRONMENTS))})\}}(.*?)\\end\{{\1\}}", re.S
)
LATEX_CODE_OPTIONS = re.compile(r"[ \t]*\[([^\]\n]*)\]")  # lstlisting's and fancyvrb's [language=Python]
LATEX_LANGUAGE = re.compile(r"language\s*=\s*\{?(?:\[[^\]]*\])?([\w+#-]+)")  # language=[Sharp]C: C
# a class's macro's options, right after it: brackets on its line, unnested, as its options are written
LATEX_MACRO_OPTIONS = re.compile(r"\A(?:\[[^\[\]\n]{0,80}\])+")
LATEX_COMMENT = re.compile(r"(?<!\\)%.*")  # to the line's end; an escaped \% is a percent sign
LATEX_SECTIONING = re.compile(rf"\\({'|'.join(LATEX_DIVISIONS)})\*?\s*[\[{{]")
LATEX_LISTS = ["itemize", "enumerate", "description", "compactitem", "compactenum", "compactdesc"]
LATEX_TABLES = ["tabular", "tabular*", "tabularx", "tabulary", "longtable"]
# left out with their arguments, each spelled as pylatexenc reads a macro's arguments: * a star, [ an
# optional and { a mandatory one
LATEX_LEFT_OUT_MACROS = {
    **dict.fromkeys(
        [
            "label",
            "ref",
            "eqref",
            "pageref",
            "autoref",
            "cref",
            "Cref",
            "nameref",
            "index",
            "input",
            "include",
            "bibliography",
            "bibliographystyle",
            "email",
            "keywords",
            "date",
            "thanks",
            "footnotetext",
            "orcid",
            "runningtitle",
            "runningauthor",
            "shorttitle",
            "shortauthors",
            "titlerunning",
            "authorrunning",
            "markright",
            "pagestyle",
            "thispagestyle",
            "pagenumbering",
            "setcounter",
            "addtocounter",
            "color",
        ],
        "{",
    ),
    **dict.fromkeys(
        [
            "cite",
            "citet",
            "citep",
            "citealp",
            "citealt",
            "citeauthor",
            "citeyear",
            "nocite",
            "parencite",
            "textcite",
            "autocite",
            "footcite",
            "includegraphics",
        ],
        "*[[{",
    ),
    **dict.fromkeys(
        [
            "author",
            "address",
            "affiliation",
            "affil",
            "institute",
            "bibitem",
            "footnote",
            "authornote",
            "ccsdesc",
            "received",
        ],
        "[{",
    ),
    **dict.fromkeys(["vspace", "hspace", "addvspace"], "*{"),
    **dict.fromkeys(["newcommand", "renewcommand", "providecommand", "DeclareMathOperator"], "*{[[{"),
    **dict.fromkeys(["newenvironment", "renewenvironment"], "*{[[{{"),
    **dict.fromkeys(["setlength", "addtolength", "markboth", "definecolor", "newtheorem"], "{{"),
    **dict.fromkeys(
        [
            "maketitle",
            "tableofcontents",
            "listoffigures",
            "listoftables",
            "newpage",
            "clearpage",
            "cleardoublepage",
            "pagebreak",
            "noindent",
            "centering",
            "hline",
            "toprule",
            "midrule",
            "bottomrule",
            "par",
            "appendix",
            "frontmatter",
            "mainmatter",
            "backmatter",
            "printbibliography",
            "raggedright",
            "raggedleft",
            "smallskip",
            "medskip",
            "bigskip",
            "indent",
            "footnotemark",
        ],
        "",
    ),
}
LATEX_LEFT_OUT_ENVIRONMENTS = ["comment", "tikzpicture", "picture", "thebibliography", "titlepage", "CCSXML"]
LATEX_LOGOS = {"TeX": "TeX", "LaTeX": "LaTeX", "LaTeXe": "LaTeX2e", "BibTeX": "BibTeX", "XeTeX": "XeTeX"}
# before a heading that a sectioning command wrote, so that only other "# " lines are escaped
HEADING_MARK = "\0"


class LatexMarkdown(LatexNodes2Text):
    """pylatexenc's text of LaTeX nodes, in Markdown: paragraphs as TeX breaks them, every environment a
    block, a macro with no rule here its braced arguments' text. It keeps what a page states beside its
    text: the highest sectioning command used (``top_division``), its titles and its code blocks."""

    def __init__(self, top_division: int, code_blocks: list[str]) -> None:
        super().__init__(latex_context=latex_text_context(), math_mode="verbatim")
        self.top_division, self.code_blocks, self.titles = top_division, code_blocks, []
        self.options_follow = False  # the node before was a macro no parser knows, whose options are no text

    def node_to_text(self, node: LatexNode | None, prev_node_hint: Any = None, textcol: int = 0) -> str:
        options_follow, self.options_follow = self.options_follow, False
        text = super().node_to_text(node, prev_node_hint, textcol)
        if options_follow and node is not None and node.isNodeType(LatexCharsNode):
            text = LATEX_MACRO_OPTIONS.sub("", text, count=1)  # \blindtext[2][1]
        self.options_follow = bool(
            node is not None
            and node.isNodeType(LatexMacroNode)
            and not (node.nodeargd and node.nodeargd.argnlist)
            and self.latex_context.get_macro_spec(node.macroname) is None
        )
        return text

    def chars_node_to_text(self, node: LatexCharsNode, textcol: int = 0) -> str:
        # a blank line ends a paragraph, any other run of white space is one space
        paragraphs = re.split(r"[ \t]*\n[ \t]*\n\s*", node.chars)
        return "\n\n".join(re.sub(r"\s+", " ", paragraph) for paragraph in paragraphs)

    def comment_node_to_text(self, node: LatexCommentNode) -> str:
        # a comment takes its line's end with it, so "10\\%" then a comment line is "10 % of it"; a blank
        # line after it still ends the paragraph
        return "\n\n" if node.comment_post_space.count("\n") > 1 else ""

    def macro_node_to_text(self, node: LatexMacroNode) -> str:
        if self.latex_context.get_macro_spec(node.macroname) is None and node.nodeargd:
            braced = [
                arg
                for arg in node.nodeargd.argnlist
                if arg is not None and arg.isNodeType(LatexGroupNode) and arg.delimiters == ("{", "}")
            ]
            return " ".join(self._groupnodecontents_to_text(arg) for arg in braced)  # \textsf{aomart}: aomart
        return super().macro_node_to_text(node)

    def environment_node_to_text(self, node: LatexEnvironmentNode) -> str:
        return f"\n\n{super().environment_node_to_text(node)}\n\n"

    def argument_text(self, node: LatexMacroNode) -> str:
        """The text of a macro's last argument, on one line (a title's ``\\\\`` breaks joined)."""
        return " ".join(self.nodelist_to_text([node.nodeargd.argnlist[-1]]).split())


def latex_division(node: LatexMacroNode, l2tobj: LatexMarkdown) -> str:
    """A sectioning command as a Markdown heading, the highest one the page uses at level 1."""
    level = min(6, max(1, LATEX_DIVISIONS.index(node.macroname) - l2tobj.top_division + 1))
    heading = l2tobj.argument_text(node)
    return f"\n\n{HEADING_MARK}{'#' * level} {heading}\n\n" if heading else "\n\n"


def latex_title(node: LatexMacroNode, l2tobj: LatexMarkdown) -> str:
    """A ``\\title``, kept as the page's title and not written in its text."""
    l2tobj.titles.append(l2tobj.argument_text(node))
    return ""


def latex_list(node: LatexEnvironmentNode, l2tobj: LatexMarkdown) -> str:
    """A list environment's items as Markdown's, a description list's term a line of its own."""
    marker = "1. " if node.environmentname in ("enumerate", "compactenum") else "- "
    items: list[tuple[LatexMacroNode, list[LatexNode]]] = []
    for child in node.nodelist:
        if child.isNodeType(LatexMacroNode) and child.macroname == "item":
            items.append((child, []))
        elif items:
            items[-1][1].append(child)
    lines = []
    for item, body in items:
        label = item.nodeargd.argnlist[0] if item.nodeargd and item.nodeargd.argnlist else None
        term = " ".join(l2tobj.nodelist_to_text([label]).split()) if label else ""
        text = l2tobj.nodelist_to_text(body).strip()
        if node.environmentname in ("description", "compactdesc"):
            lines.append("\n".join(filter(None, [term, text])))
            continue
        first, *rest = " ".join(filter(None, [term, text])).split("\n")
        indent = " " * len(marker)  # a nested list's lines under their item
        lines.append(marker + first + "".join(f"\n{indent}{line}" if line.strip() else "\n" for line in rest))
    return "\n\n" + "\n".join(lines) + "\n\n"


def latex_table(node: LatexEnvironmentNode, l2tobj: LatexMarkdown) -> str:
    """A tabular's rows (cells split at ``&``, rows at ``\\\\``) as ``table_text`` writes them."""
    rows: list[list[str]] = [[]]
    cell: list[LatexNode] = []
    for child in [*node.nodelist, None]:  # None: the last cell's end
        if child is None or (child.isNodeType(LatexSpecialsNode) and child.specials_chars == "&"):
            rows[-1].append(l2tobj.nodelist_to_text(cell))
            cell = []
        elif child.isNodeType(LatexMacroNode) and child.macroname in ("\\", "tabularnewline"):
            rows[-1].append(l2tobj.nodelist_to_text(cell))
            rows.append([])
            cell = []
        else:
            cell.append(child)
    return f"\n\n{table_text(rows)}\n\n"


def latex_code(environment: str, code: str) -> str:
    """A code environment's text as fenced code, in the language its options name (``minted``'s
    argument, ``lstlisting``'s ``language=``), without the blank lines and indent around it."""
    language = ""
    if environment == "minted" and (argument := re.match(r"\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}", code)):
        language, code = argument[1], code[argument.end() :]
    elif options := LATEX_CODE_OPTIONS.match(code):
        named = LATEX_LANGUAGE.search(options[1])
        language, code = (named[1].lower() if named else ""), code[options.end() :]
    return fenced_code(textwrap.dedent(re.sub(r"\A(?:[ \t]*\n)+|(?:\n[ \t]*)+\Z", "", code)), language)


@functools.cache
def latex_walker_context() -> LatexContextDb:
    """How pylatexenc parses a page: its default macros and environments, and the arguments of those
    this reader leaves out or reads (sectioning, titles, links, captions)."""
    context = get_default_latex_walker_context()
    context.add_context_category(
        "synthembed",
        prepend=True,
        macros=[
            std_macro(name, spec) if spec else MacroSpec(name, "")
            for name, spec in LATEX_LEFT_OUT_MACROS.items()
        ]
        + [std_macro(name, "*[{") for name in LATEX_DIVISIONS]
        + [
            std_macro("title", "[{"),
            std_macro("caption", "[{"),
            std_macro("href", "[{{"),
            std_macro("url", "{"),
        ]
        + [std_macro("synthembedcode", "{")],  # where a code block was taken out
    )
    # a class's or package's own environment: its options (\begin{exercise}[points=4]) are no text
    context.set_unknown_environment_spec(EnvironmentSpec("", "["))
    return context


@functools.cache
def latex_text_context() -> LatexContextDb:
    """How ``LatexMarkdown`` writes what was parsed: pylatexenc's defaults (accents, symbols, quotes,
    dashes), and Markdown for sections, lists, tables, code, links and captions."""
    context = get_default_latex_text_context()
    context.add_context_category(
        "synthembed",
        prepend=True,
        macros=[MacroTextSpec(name, simplify_repl=latex_division) for name in LATEX_DIVISIONS]
        + [MacroTextSpec(name, discard=True) for name in LATEX_LEFT_OUT_MACROS]
        + [MacroTextSpec(name, text) for name, text in LATEX_LOGOS.items()]
        + [
            MacroTextSpec("title", simplify_repl=latex_title),
            MacroTextSpec("url", "%s"),
            MacroTextSpec("href", "%(3)s"),
            MacroTextSpec("caption", "\n\n%(2)s\n\n"),
            MacroTextSpec("item", "\n- "),  # an item of a list environment this reader does not know
            MacroTextSpec("verb", lambda node: f"`{node.nodeargd.verbatim_text}`" if node.nodeargd else ""),
            MacroTextSpec(
                "synthembedcode",
                lambda node, l2tobj: (
                    f"\n\n{l2tobj.code_blocks[int(node.nodeargd.argnlist[0].latex_verbatim()[1:-1])]}\n\n"
                ),
            ),
        ],
        environments=[EnvironmentTextSpec(name, simplify_repl=latex_list) for name in LATEX_LISTS]
        + [EnvironmentTextSpec(name, simplify_repl=latex_table) for name in LATEX_TABLES]
        + [EnvironmentTextSpec(name, discard=True) for name in LATEX_LEFT_OUT_ENVIRONMENTS],
        specials=[SpecialsTextSpec("~", " ")],
    )
    return context


LATEX_DEFINITION = re.compile(
    r"\\(?:(?:provide|new)command\*?\s*\{?\\([A-Za-z]+)\}?|def\s*\\([A-Za-z]+))\s*(\[\d\]|#)?\s*\{"
)


def braced_end(tex: str, opening: int) -> int:
    r"""The index after the brace that closes the one at ``opening`` (escaped braces not counted), or the
    text's length where none does.

    >>> braced_end(r"{a \{ {b}} c", 0)
    10
    """
    depth = 0
    for match in re.compile(r"\\.|[{}]", re.S).finditer(tex, opening):
        if match[0] in "{}":
            depth += 1 if match[0] == "{" else -1
            if depth == 0:
                return match.end()
    return len(tex)


def latex_abbreviations(preamble: str) -> dict[str, str]:
    r"""The macros a preamble defines without parameters (``\newcommand{\ours}{FooNet}``,
    ``\def\papertitle{...}``): the names and shorthands a paper's text is written in. Redefinitions
    (``\renewcommand``) of LaTeX's own and a package's internal macros (``\@title``) change its layout,
    not its words, and are left to TeX.

    >>> latex_abbreviations(r"\newcommand{\ours}{\textsc{FooNet}}\def\ds{SciFact}\newcommand{\x}[1]{#1}")
    {'ours': '\\textsc{FooNet}', 'ds': 'SciFact'}
    """
    definitions = {}
    preamble = LATEX_COMMENT.sub("", preamble)
    for match in LATEX_DEFINITION.finditer(preamble):
        if not match[3]:  # [1] or #1: a macro with parameters, which only TeX expands
            definitions[match[1] or match[2]] = preamble[
                match.end() : braced_end(preamble, match.end() - 1) - 1
            ]
    return definitions


def latex_as_markdown(tex: str) -> tuple[str | None, str]:
    r"""(its ``\title``, its text in Markdown) of a LaTeX file: the body of its ``document`` environment
    (all of a file without ``\documentclass``, a chapter that a main file inputs), its sectioning commands
    ``#`` headings (the highest used at level 1), code environments (``verbatim``, ``lstlisting``,
    ``minted``, fancyvrb's) fenced code in their language, lists and tables as Markdown and ``table_text``
    write them, accents, symbols, quotes and dashes as Unicode (pylatexenc), math as written, links and
    captions their text. The preamble's definitions, which a reader without TeX cannot expand, labels,
    references, citations, footnotes, graphics, includes (the included file is a page of its own) and the
    title block's authors and dates are left out.

    >>> tex = "\n".join([
    ...     r"\documentclass{article}", r"\newcommand{\kettle}{K-2}", r"\title{Kettle Care\thanks{Draft.}}",
    ...     r"\begin{document}", r"\maketitle", r"\section{Descaling}\label{sec:d}",
    ...     r"Descale it monthly~\cite{doe}, see Section~\ref{sec:d}. It holds", r"$1.7\,l$ at 100\,\%.",
    ...     "", r"\begin{itemize}", r"  \item Fill it with vinegar.", r"  \item[Then] Boil \emph{twice}.",
    ...     r"\end{itemize}", r"\begin{lstlisting}[language=Python]", "  kettle.descale()  # 100%",
    ...     r"\end{lstlisting}", r"\end{document}",
    ... ])
    >>> title, markdown = latex_as_markdown(tex)
    >>> title
    'Kettle Care'
    >>> print(markdown)
    # Descaling
    <BLANKLINE>
    Descale it monthly, see Section. It holds $1.7\,l$ at 100 %.
    <BLANKLINE>
    - Fill it with vinegar.
    - Then Boil twice.
    <BLANKLINE>
    ```python
    kettle.descale()  # 100%
    ```
    """
    code_blocks: list[str] = []

    def taken_out(match: re.Match[str]) -> str:
        line = tex[tex.rfind("\n", 0, match.start()) + 1 : match.start()]
        if LATEX_COMMENT.search(line):
            return match[0]  # commented out
        code_blocks.append(latex_code(match[1], match[2]))
        return rf"\synthembedcode{{{len(code_blocks) - 1}}}"

    tex = LATEX_CODE.sub(taken_out, tex)
    preamble = ""
    documentclass = re.search(r"^[^%\n]*?\\documentclass\b", tex, re.MULTILINE)
    first_environment = re.search(r"^[^%\n]*?\\begin\{", tex, re.MULTILINE)
    # a \documentclass after an environment's start is an example inside a code environment of a class's own
    if documentclass and not (first_environment and first_environment.start() < documentclass.start()):
        begin = re.compile(r"^([^%\n]*?)\\begin\{document\}", re.MULTILINE).search(tex, documentclass.end())
        if begin:
            preamble, tex = tex[: begin.start() + len(begin[1])], tex[begin.end() :]
            tex = tex[:end] if (end := tex.rfind(r"\end{document}")) >= 0 else tex
    if abbreviations := latex_abbreviations(preamble):
        names = re.compile(rf"\\({'|'.join(map(re.escape, abbreviations))})(?![A-Za-z@])")
        for _ in range(3):  # an abbreviation may use another
            preamble, tex = (
                names.sub(lambda match: f"{{{abbreviations[match[1]]}}}", part) for part in (preamble, tex)
            )
    uncommented = LATEX_COMMENT.sub("", tex)
    used = {match[1] for match in LATEX_SECTIONING.finditer(uncommented)}
    l2tobj = LatexMarkdown(min(map(LATEX_DIVISIONS.index, used), default=2), code_blocks)
    context = latex_walker_context()
    for node in LatexWalker(preamble, latex_context=context, tolerant_parsing=True).get_latex_nodes()[0]:
        if node.isNodeType(LatexMacroNode) and node.macroname == "title":  # the preamble is read for it alone
            latex_title(node, l2tobj)
    text = l2tobj.nodelist_to_text(
        LatexWalker(tex, latex_context=context, tolerant_parsing=True).get_latex_nodes()[0]
    )
    lines = []
    for line, fenced in fenced_lines(text):
        if fenced:
            lines.append(line.rstrip())
            continue
        # a list item keeps its indent, other lines lose TeX's; a space left before punctuation, or beside
        # another, where a citation or reference stood goes
        line = re.sub(r"(?<=\w) +(?=[,.](?:\s|$))", "", re.sub(r"(?<=\S)  +", " ", line.rstrip()))
        if line.strip().startswith(HEADING_MARK):  # the mark goes below, with any other
            lines.append(line.strip())
        else:
            lines.append(as_text(line if re.match(r"\s*(?:-|\d+\.) ", line) else line.strip()))
    # a heading's mark goes, and so does one inside a table cell or caption, where the heading is text
    markdown = re.sub(r"\n{3,}", "\n\n", "\n".join(lines).replace(HEADING_MARK, "")).strip("\n")
    return document_title(l2tobj.titles[0] if l2tobj.titles else None), markdown


def without_page_furniture(pages: list[list[str]], min_pages: int = 3) -> list[list[str]]:
    """The lines of a document's pages without their running headers and footers: a first or last line
    that, its numbers masked, opens or closes at least ``min_pages`` pages (a page number, a book's
    "Chapter 4: Function reference 21").

    >>> pages = [["Manual", f"Step {i} of the setup.", str(i)] for i in range(1, 4)]
    >>> without_page_furniture(pages + [["Manual", "Index"]])
    [['Step 1 of the setup.'], ['Step 2 of the setup.'], ['Step 3 of the setup.'], ['Index']]
    """

    def masked(line: str) -> str:
        return re.sub(r"\d+", "#", line.strip())

    heads = Counter(masked(lines[0]) for lines in pages if lines)
    feet = Counter(masked(lines[-1]) for lines in pages if lines)

    def furniture(lines: list[str], k: int) -> bool:
        head = k == 0 and heads[masked(lines[k])] >= min_pages
        return head or (k == len(lines) - 1 and feet[masked(lines[k])] >= min_pages)

    return [[line for k, line in enumerate(lines) if not furniture(lines, k)] for lines in pages]


# a line of a PDF page's text layer: its text, the height of its baseline on the page and the smallest
# font size its characters are drawn at, both in points
PdfLine = tuple[str, float, float]
# typesetters draw ff, fi, fl, ffi, ffl and st as one glyph, and a text layer keeps its code point
# (U+FB00-FB06), which a tokenizer does not know ("ﬁrst": "ﬁ", "##rst"): the letters instead
LIGATURES = str.maketrans({chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)})
# a gap above a line this many times the document's usual line spacing ends a paragraph (TeX's parskip
# widens it by a quarter, a word processor's by a half or more); a line drawn this many times larger
# than most of the text is a heading
PARAGRAPH_GAP = 1.15
HEADING_SIZE = 1.15
HEADING_MAX_WORDS = 20


def pdf_page_lines(page: pypdf.PageObject) -> tuple[list[PdfLine], Counter[float]]:
    """The lines of a PDF page's text layer, in pypdf's order, with where and how large each is drawn;
    and how many characters are drawn at each font size."""
    fragments: list[tuple[str, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        # the text matrix in page space: its vertical scale turns the font size into the drawn one
        scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
        fragments.append((text, tm[4] * cm[1] + tm[5] * cm[3] + cm[5], round(size * scale, 1)))

    page.extract_text(visitor_text=visit)
    lines: list[PdfLine] = []
    sizes: Counter[float] = Counter()
    text, height, size = "", 0.0, math.inf
    for fragment, at, drawn in [*fragments, ("\n", 0.0, 0.0)]:  # a last line break ends the last line
        for k, piece in enumerate(fragment.translate(LIGATURES).split("\n")):
            if k:  # a line ends
                if text.strip():
                    lines.append((" ".join(text.split()), height, size))
                text, size = "", math.inf
            if piece.strip():
                if not text.strip():  # a line is where its first character is drawn
                    height = at
                size = min(size, drawn)
                sizes[drawn] += len(piece.strip())
            text += piece
    return lines, sizes


def pdf_markdown(pages: list[list[PdfLine]], body_size: float) -> list[list[str]]:
    """The lines of a PDF's pages in Markdown: a blank line between paragraphs, where the gap above a
    line is ``PARAGRAPH_GAP`` times the document's usual line spacing or more, or where the text moves up
    the page (a new column); a short line drawn ``HEADING_SIZE`` times the body text's size
    (``body_size``) or larger a ``#`` heading, the largest size ranked first, and the lines of one
    heading one heading: a line of its size below it with no paragraph's gap, or one that goes on in lower
    case at the spacing of its size (the usual line spacing scaled by its size over ``body_size``; names
    stacked on a title page are spaced so too, but each starts a heading of its own).

    >>> page = [("2 Syntax", 700, 17.0), ("The parser is strict.", 680, 10.9), ("It stops.", 667, 10.9),
    ...         ("Comments end a line", 651, 10.9), ("or a block.", 638, 10.9), ("2.1 Types", 612, 14.0),
    ...         ("Each is a type.", 595, 10.9)]
    >>> print("\\n".join(pdf_markdown([page], body_size=10.9)[0]))
    # 2 Syntax
    <BLANKLINE>
    The parser is strict.
    It stops.
    <BLANKLINE>
    Comments end a line
    or a block.
    <BLANKLINE>
    ## 2.1 Types
    <BLANKLINE>
    Each is a type.

    A title on two lines, spaced as its size is, and two authors' names below it:

    >>> page = [("Kettles for", 700, 18.0), ("a small kitchen", 678, 18.0), ("Ada Lovelace", 640, 14.0),
    ...         ("Alan Turing", 623, 14.0), ("They boil.", 590, 11.0), ("They pour.", 576, 11.0),
    ...         ("They whistle.", 562, 11.0)]
    >>> print("\\n".join(pdf_markdown([page], body_size=11.0)[0]))
    # Kettles for a small kitchen
    <BLANKLINE>
    ## Ada Lovelace
    <BLANKLINE>
    ## Alan Turing
    <BLANKLINE>
    They boil.
    They pour.
    They whistle.
    """
    steps = Counter(
        round((above[1] - line[1]) * 2) / 2
        for lines in pages
        for above, line in itertools.pairwise(lines)
        if above[1] > line[1]
    )
    spacing = steps.most_common(1)[0][0] if steps else math.inf

    def heading(line: PdfLine) -> bool:
        large = body_size > 0 and line[2] >= HEADING_SIZE * body_size  # text drawn at size 0: no body
        return large and len(line[0].split()) <= HEADING_MAX_WORDS

    ranks = sorted({round(line[2]) for lines in pages for line in lines if heading(line)}, reverse=True)
    marked = []
    for lines in pages:
        kept: list[str] = []
        for k, line in enumerate(lines):
            gap = lines[k - 1][1] - line[1] if k else 0.0
            new_paragraph = k > 0 and (gap >= PARAGRAPH_GAP * spacing or gap < -spacing / 2)
            mark = "#" * min(ranks.index(round(line[2])) + 1, 6) + " " if heading(line) else ""
            one_heading = mark and kept and kept[-1].startswith(mark) and lines[k - 1][2] == line[2]
            goes_on = line[0][0].islower() and 0 < gap < PARAGRAPH_GAP * spacing * line[2] / body_size
            if one_heading and (goes_on or not new_paragraph):  # a heading on two lines
                kept[-1] += " " + line[0]
                continue
            if kept and (new_paragraph or mark or MARKDOWN_HEADING.match(kept[-1])):
                kept.append("")
            kept.append(mark + line[0] if mark else as_text(line[0]))
        marked.append(kept)
    return marked


# a word hyphenated at a line's end, its second half going on in lower case on the next line
LINE_END_HYPHEN = re.compile(r"([^\W\d_]+)-\n([^\W\d_A-Z]\w*)(\S*)( ?)")
HYPHENATED_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def without_line_end_hyphens(text: str) -> str:
    """A text with the words its typesetter hyphenated at lines' ends whole again ("manip-\\nulation":
    "manipulation", the line break after it), but for a word the text writes with its hyphen elsewhere
    and never without ("non-\\nlinear" where "non-linear" is written and "nonlinear" is not).

    >>> text = "Its manip-\\nulation, easy.\\nA non-\\nlinear map: non-linear. Its com-\\nposition"
    >>> print(without_line_end_hyphens(text))
    Its manipulation,
    easy.
    A non-linear
    map: non-linear. Its composition
    """
    words = Counter(HYPHENATED_WORD.findall(text))

    def whole(match: re.Match[str]) -> str:
        head, tail, after, space = match.groups()
        hyphen = "-" if words[f"{head}-{tail}"] and not words[head + tail] else ""
        return f"{head}{hyphen}{tail}{after}" + ("\n" if space else "")  # a line break where it ended

    return LINE_END_HYPHEN.sub(whole, text)


def pdf_text(data: bytes) -> tuple[str | None, str]:
    """(its document title, where it states one (``document_title``); its text layer in Markdown, page
    after page, with its paragraphs and headings (``pdf_markdown``), its ligatures as their letters,
    without running headers and footers (``without_page_furniture``) and hyphens at lines' ends
    (``without_line_end_hyphens``)) of a PDF. A paragraph that runs on to the next page stays one."""
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # many open with the empty password
            raise UnreadableFile("encrypted PDF (a password is needed)")
        read = [pdf_page_lines(page) for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except UnreadableFile:
        raise
    except Exception as err:  # pypdf raises many kinds on a damaged file: each is that file's bad row
        raise UnreadableFile(f"not a readable PDF ({type(err).__name__}: {err})") from err
    sizes = sum((page_sizes for _, page_sizes in read), Counter())
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0
    pages = without_page_furniture(pdf_markdown([lines for lines, _ in read], body_size))
    text = ""
    for lines in pages:
        kept = "\n".join(lines).strip()
        if not kept:
            continue
        last_line = text.rpartition("\n")[2]
        # a page that ends mid-sentence and a next one that goes on in lower case: one paragraph
        runs_on = bool(text) and last_line[-1] not in ".!?:" and not MARKDOWN_HEADING.match(last_line)
        runs_on = runs_on and kept[0].islower()
        text += ("\n" if runs_on else "\n\n" if text else "") + kept
    return document_title(title if isinstance(title, str) else None), without_line_end_hyphens(text)


# elements whose content a reader does not see, or that are not the page's own: scripts, styles, forms'
# controls, and the site's navigation, banner and footer outside the page's main content
HIDDEN_ELEMENTS = {
    "head",
    "title",
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "button",
    "select",
    "iframe",
}
SITE_ELEMENTS = {"nav", "header", "footer", "aside"}
SITE_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary"}
# classes that hide an element from sight (a "Skip to content" link for screen readers) or mark a
# heading's permalink (Sphinx's ¶)
HIDDEN_CLASSES = {
    "sr-only",
    "visually-hidden",
    "screen-reader-text",
    "skip-link",
    "skip-to-content",
    "headerlink",
}
MAIN_ELEMENTS = {"main", "article"}
VOID_ELEMENTS = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
BLOCK_ELEMENTS = {
    *("address", "article", "blockquote", "dd", "details", "dialog", "div", "dl", "dt", "fieldset"),
    *(
        "figcaption",
        "figure",
        "form",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tr",
        "ul",
    ),
}


class HtmlText(HTMLParser):
    """The text of an HTML page in Markdown (``html_text``); with ``main_only``, that of its main
    content alone (``main``, ``role="main"``)."""

    def __init__(self, main_only: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.main_only = main_only
        self.blocks: list[str] = []
        self.lines: list[list[str]] = [[]]  # the text of the block being read, cut at each <br>
        self.prefix = ""  # of that block: "- " in a list item, "## " in a heading
        # the open elements, each with "skip" where its content is left out, "main" where it holds the
        # main content; an end tag closes the elements opened inside it that are still open, as a browser does
        self.open: list[tuple[str, str | None]] = []
        self.skips = self.mains = 0
        self.pre: list[str] | None = None  # the raw text of a <pre> being read
        self.title: list[str] | None = None  # the <title>'s text, once met
        self.in_title = False
        self.heading_link: int | None = None  # where the text of a link in a heading starts
        self.redirect: str | None = None  # where a <meta http-equiv="refresh"> sends the reader at once

    @property
    def visible(self) -> bool:
        return not self.skips and (self.mains > 0 or not self.main_only)

    @property
    def in_cell(self) -> bool:  # a block inside a table's cell (Asciidoctor's <p> in each) stays in its row
        return any(name in ("td", "th") for name, _ in self.open)

    def end_block(self) -> None:
        # spaces as a browser shows them
        lines = [as_text(" ".join("".join(chunks).split())) for chunks in self.lines]
        if text := "\n".join(line for line in lines if line):
            self.blocks.append(self.prefix + text)
        self.lines, self.prefix = [[]], ""

    def hidden(self, tag: str, attributes: dict[str, str | None]) -> bool:
        return (
            tag in HIDDEN_ELEMENTS
            or attributes.get("role") in SITE_ROLES
            or "hidden" in attributes
            or attributes.get("aria-hidden") == "true"
            or not HIDDEN_CLASSES.isdisjoint((attributes.get("class") or "").split())
            or (tag in SITE_ELEMENTS and not self.mains)
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "title":
            self.in_title, self.title = True, self.title or []
        refresh = tag == "meta" and (attributes.get("http-equiv") or "").lower() == "refresh"
        if refresh and (at_once := IMMEDIATE_REFRESH.match(attributes.get("content") or "")):
            self.redirect = at_once[1]
        if tag in VOID_ELEMENTS:
            if tag == "br" and self.visible:
                self.lines.append([])
            elif tag == "hr" and self.visible:
                self.end_block()
            return
        kind = None
        if not self.skips and self.hidden(tag, attributes):
            kind = "skip"
        elif tag in MAIN_ELEMENTS or attributes.get("role") == "main":
            kind = "main"
        self.open.append((tag, kind))
        self.skips += kind == "skip"
        self.mains += kind == "main"
        if not self.visible:
            return
        if tag == "a" and self.prefix.startswith("#") and (attributes.get("href") or "").startswith("#"):
            self.heading_link = len(self.lines[-1])
        if tag == "code" and self.pre and not self.pre[-1].endswith("\n"):
            self.pre.append("\n")  # code blocks side by side in one pre (a page's ESM and CommonJS tabs)
        if tag == "pre":
            self.end_block()
            self.pre = []
        elif re.fullmatch(r"h[1-6]", tag):
            self.end_block()
            self.prefix = "#" * int(tag[1]) + " "
        elif tag in ("td", "th") or (tag in BLOCK_ELEMENTS and self.in_cell):
            self.lines[-1].append(" ")
        elif tag in BLOCK_ELEMENTS:
            self.end_block()
            if tag == "li":
                self.prefix = "- "

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if all(name != tag for name, _ in self.open):
            return  # an end tag without its start
        while True:
            visible = self.visible
            name, kind = self.open.pop()
            self.skips -= kind == "skip"
            self.mains -= kind == "main"
            if visible:
                self.end_element(name)
            if name == tag:
                return

    def end_element(self, tag: str) -> None:
        if tag == "a" and self.heading_link is not None:
            link = self.lines[-1][self.heading_link :]
            if not any(char.isalnum() for char in "".join(link)):  # a permalink mark: "#", "¶", "§"
                del self.lines[-1][self.heading_link :]
            self.heading_link = None
        if tag == "pre" and self.pre is not None:
            code = "".join(self.pre).strip("\n")
            if code.strip():
                self.blocks.append(fenced_code(code))
            self.pre = None
        elif re.fullmatch(r"h[1-6]", tag) or (tag in BLOCK_ELEMENTS and not self.in_cell):
            self.end_block()

    def handle_data(self, data: str) -> None:
        if self.in_title and self.title is not None:
            self.title.append(data)
        if not self.visible:
            return
        if self.pre is not None:
            self.pre.append(data)
        else:
            self.lines[-1].append(data)


IMMEDIATE_REFRESH = re.compile(r"""\s*0*\s*[;,]\s*url\s*=\s*['"]?([^'"\s]+)""", re.IGNORECASE)
MAIN_CONTENT = re.compile(r"""<main[\s>]|\srole\s*=\s*["']?main\b""", re.IGNORECASE)


def html_text(html: str) -> tuple[str | None, str]:
    """(title, text) of an HTML page: its text in Markdown, as a reader sees it (no scripts, styles or
    hidden elements; only its main content where it marks one with ``main`` or ``role="main"``, else no
    site navigation, banner or footer outside an ``article``),
    headings as ``#`` headings, list items as ``- `` lines, ``pre`` blocks fenced, a blank line between
    blocks; its title the first heading, else its ``<title>`` where that is a title (``document_title``).

    >>> page = (
    ...     "<html><head><title>fs | Node.js</title><style>p {color: red}</style></head><body>"
    ...     "<nav><a href='/'>Home</a></nav><main><h1>File system</h1><p>Reads and\\n  writes"
    ...     " <code>files</code>.</p><ul><li>Promises<li>Callbacks</ul><pre>fs.readFile(path)\\n</pre>"
    ...     "</main><footer>&copy; Node.js</footer></body></html>"
    ... )
    >>> title, text = html_text(page)
    >>> print(title)
    File system
    >>> print(text)
    # File system
    <BLANKLINE>
    Reads and writes files.
    <BLANKLINE>
    - Promises
    <BLANKLINE>
    - Callbacks
    <BLANKLINE>
    ```
    fs.readFile(path)
    ```
    """
    parser = HtmlText(main_only=MAIN_CONTENT.search(html) is not None)
    parser.feed(html)
    parser.close()
    parser.end_block()
    if parser.redirect is not None:
        raise NotAPage(f"a page that redirects at once (to {parser.redirect})")
    text = "\n\n".join(parser.blocks)
    return first_heading(text) or document_title(" ".join("".join(parser.title or []).split())), text


STYLE_HEADING = re.compile(r"heading ([1-6])", re.IGNORECASE)  # Word's and OpenDocument's "Heading N"
# paragraph styles of Word and OpenDocument whose runs are one block: a title set on several lines, and
# code a line a paragraph (LibreOffice's "Preformatted Text", pandoc's "Source Code", Word's "HTML
# Preformatted")
PARAGRAPH_KINDS = {
    "title": "title",
    "preformatted text": "code",
    "source code": "code",
    "html preformatted": "code",
}


def styled_markdown(paragraphs: Iterable[tuple[str, str]]) -> Iterator[str]:
    """The Markdown blocks of a document's (kind, text) paragraphs in order: a run of ``title`` paragraphs
    one ``#`` heading, a run of ``code`` paragraphs one fenced code block (its inner empty lines kept,
    fenced by more backticks than it holds in a row), any other (kind ``""``) the block it is.

    >>> paragraphs = [("title", "Kettle care"), ("title", "for owners"), ("", "Boil it:"),
    ...               ("code", "boil()"), ("code", ""), ("code", "  rinse()"), ("", "")]
    >>> list(styled_markdown(paragraphs))
    ['# Kettle care for owners', 'Boil it:', '```\\nboil()\\n\\n  rinse()\\n```']
    """
    for kind, run in itertools.groupby(paragraphs, key=itemgetter(0)):
        texts = [text for _, text in run]
        if kind == "title":
            if title := " ".join(" ".join(texts).split()):
                yield f"# {title}"
        elif kind == "code":
            if code := "\n".join(texts).strip("\n"):
                yield fenced_code(code)
        else:
            yield from (text for text in texts if text)


def table_text(rows: Iterable[Iterable[str]]) -> str:
    """A table as one line of its cells' text per row (a merged cell's text given once), without empty
    cells and rows.

    >>> print(table_text([["Size", "", "Litres"], ["", ""], ["Small", "", "1.0\\n(half full)"]]))
    Size Litres
    Small 1.0 (half full)
    """
    lines = (" ".join(text for cell in row if (text := " ".join(cell.split()))) for row in rows)
    return as_text("\n".join(line for line in lines if line))


def zipped_document(data: bytes, kind: str, old_format: str, read: Callable[[IO[bytes]], T]) -> T:
    """What ``read`` makes of the bytes of a document packed as a zip archive (a Word document, a
    presentation, an EPUB book); a file that is not a zip archive (the ``old_format`` file renamed) or
    that ``read`` fails on is unreadable."""
    if not zipfile.is_zipfile(io.BytesIO(data)):  # the libraries would say only that they found no package
        raise UnreadableFile(f"not a readable {kind} (not a zip archive: a {old_format} renamed, or damaged)")
    try:
        return read(io.BytesIO(data))
    except UnreadableFile:
        raise
    except Exception as err:  # the libraries raise many kinds on a damaged file: each is that file's bad row
        raise UnreadableFile(f"not a readable {kind} ({type(err).__name__}: {err})") from err


def word_block(item: Paragraph | Table) -> tuple[str, str]:
    """A paragraph of a Word document as (its kind, its Markdown): a "Heading N" paragraph a ``#`` heading,
    one of a "List" style a ``- `` line, a "Title" or code paragraph (``PARAGRAPH_KINDS``) its text for
    ``styled_markdown`` to join with its neighbours; or a table as one line of its cells' text per row."""
    if isinstance(item, Table):  # a merged cell is the same cell in each column it spans
        return "", table_text(
            [cell.text for k, cell in enumerate(row.cells) if k == 0 or cell._tc is not row.cells[k - 1]._tc]
            for row in item.rows
        )
    style = item.style.name if item.style is not None else ""
    if kind := PARAGRAPH_KINDS.get(style.lower()):
        return kind, item.text.rstrip()
    text = item.text.strip()
    if text and (heading := STYLE_HEADING.fullmatch(style)):
        return "", f"{'#' * int(heading[1])} {' '.join(text.split())}"
    return "", f"- {text}" if text and style.lower().startswith("list") else as_text(text)


def word_text(data: bytes) -> tuple[str | None, str]:
    """(its document title, where it states one (``document_title``); its text in Markdown, its blocks
    (``word_block``) joined by ``styled_markdown``) of a Word document (.docx)."""

    def read(stream: IO[bytes]) -> tuple[str, list[tuple[str, str]]]:
        document = docx.Document(stream)
        return document.core_properties.title, [word_block(item) for item in document.iter_inner_content()]

    title, blocks = zipped_document(data, "Word document", ".doc", read)
    return document_title(title), "\n\n".join(styled_markdown(blocks))


ODF = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}


@functools.cache  # called for every element of a document
def odf(name: str) -> str:
    """The ElementTree tag of an OpenDocument element or attribute named ``prefix:local``.

    >>> odf("text:p")
    '{urn:oasis:names:tc:opendocument:xmlns:text:1.0}p'
    """
    prefix, local = name.split(":")
    return f"{{{ODF[prefix]}}}{local}"


# generated or hidden text: footnotes and comments (not the paragraph's), heading numbers, deleted text
# kept for tracked changes, and indexes (a table of contents repeats the headings); and frames (pictures,
# text boxes: a text box's paragraphs follow its paragraph's, ``odf_text_boxes``)
ODF_LEFT_OUT = {
    odf(f"text:{name}")
    for name in (
        "note",
        "number",
        "tracked-changes",
        "table-of-content",
        "alphabetical-index",
        "illustration-index",
        "table-index",
        "object-index",
        "user-index",
        "bibliography",
    )
} | {odf("office:annotation"), odf("draw:frame")}
ODF_STYLE_ESCAPE = re.compile(r"_([0-9A-Fa-f]{2})_")


@functools.cache  # a document names a few styles over and over
def odf_style_name(name: str) -> str:
    """A style's name as its application shows it.

    >>> odf_style_name("Heading_20_1")
    'Heading 1'
    """
    return ODF_STYLE_ESCAPE.sub(lambda code: chr(int(code[1], 16)), name)


XML_SPACE = re.compile(r"[ \t\r\n]+")


def odf_inline(element: ElementTree.Element) -> str:
    """The text of an OpenDocument paragraph or heading as a reader sees it, without footnotes, comments or
    heading numbers (``ODF_LEFT_OUT``): the file's own white space collapsed and trimmed at line ends, the
    spaces, tabs and line breaks it marks up kept (a code line's indentation).

    >>> ns = 'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    >>> odf_inline(ElementTree.fromstring(f'<text:p {ns}> if x:<text:line-break/><text:s text:c="4"/>go'
    ...                                   '<text:span> on</text:span></text:p>'))
    'if x:\\n    go on'
    """

    def marked(element: ElementTree.Element) -> Iterator[str]:
        yield XML_SPACE.sub(" ", element.text or "")
        for child in element:
            if child.tag == odf("text:line-break"):
                yield "\n"
            elif child.tag == odf("text:tab"):
                yield "\t"
            elif child.tag == odf("text:s"):  # NUL, which XML text cannot hold, marks a space to keep
                yield "\0" * int(child.get(odf("text:c"), "1"))
            elif child.tag not in ODF_LEFT_OUT:
                yield from marked(child)
            yield XML_SPACE.sub(" ", child.tail or "")

    lines = "".join(marked(element)).split("\n")
    return "\n".join(line.strip(" ").replace("\0", " ").rstrip() for line in lines).strip("\n")


ODF_ROW_GROUPS = {odf(f"table:{name}") for name in ("table-header-rows", "table-rows", "table-row-group")}


def odf_rows(table: ElementTree.Element) -> Iterator[ElementTree.Element]:
    """A table's rows in order, those of its header and row groups included (not a nested table's)."""
    for child in table:
        if child.tag == odf("table:table-row"):
            yield child
        elif child.tag in ODF_ROW_GROUPS:
            yield from odf_rows(child)


def odf_text_boxes(element: ElementTree.Element) -> Iterator[ElementTree.Element]:
    """The text boxes drawn in a paragraph (a caption's frame, a sidebar), not those inside them."""
    for child in element:
        if child.tag == odf("draw:text-box"):
            yield child
        else:
            yield from odf_text_boxes(child)


def odt_list(element: ElementTree.Element, styles: dict[str, str], level: int = 0) -> str:
    """An OpenDocument list as ``- `` items, a nested list's indented by its level."""
    lines = []
    for item in element:
        for child in item:
            if child.tag == odf("text:list"):
                lines.append(odt_list(child, styles, level + 1))
            elif child.tag in (odf("text:p"), odf("text:h")):
                if text := odf_inline(child):
                    lines.append(f"{'  ' * level}- {text}")
            else:
                lines.extend(odt_blocks(child, styles))
    return "\n".join(line for line in lines if line)


def odt_paragraphs(element: ElementTree.Element, styles: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The blocks of an OpenDocument text's body (or a section, a text box or a table cell of it) as (kind,
    Markdown), for ``styled_markdown``: a heading as a ``#`` heading of its outline level, a paragraph of a
    "Heading N" style too, a "Title" or code paragraph (``PARAGRAPH_KINDS``) its text of that kind, a list's
    items as ``- `` lines (``odt_list``), a table as a line per row (a merged cell once), a paragraph as
    its text followed by its text boxes' blocks."""
    for child in element:
        if child.tag in (odf("text:h"), odf("text:p")):
            name = child.get(odf("text:style-name"), "")
            style = odf_style_name(styles.get(name, name))
            text = odf_inline(child)
            heading = STYLE_HEADING.fullmatch(style)
            if child.tag == odf("text:h") or heading:
                level = int(child.get(odf("text:outline-level")) or (heading[1] if heading else 1))
                yield "", f"{'#' * min(level, 6)} {' '.join(text.split())}" if text else ""
            elif kind := PARAGRAPH_KINDS.get(style.lower()):
                yield kind, text
            else:
                yield "", as_text(text)
            for box in odf_text_boxes(child):
                yield from odt_paragraphs(box, styles)
        elif child.tag == odf("text:list"):
            yield "", odt_list(child, styles)
        elif child.tag == odf("table:table"):  # a merged cell's neighbours are covered-table-cells
            yield (
                "",
                table_text(
                    [" ".join(odt_blocks(cell, styles)) for cell in row.iterfind("table:table-cell", ODF)]
                    for row in odf_rows(child)
                ),
            )
        elif child.tag == odf("text:section"):
            yield from odt_paragraphs(child, styles)


def odt_blocks(element: ElementTree.Element, styles: dict[str, str]) -> Iterator[str]:
    """The Markdown blocks of an OpenDocument text's body or a part of it (``odt_paragraphs``, joined by
    ``styled_markdown``)."""
    return styled_markdown(odt_paragraphs(element, styles))


def odt_text(data: bytes) -> tuple[str | None, str]:
    """(its document title, where it states one (``document_title`` of its ``dc:title``); its body in
    Markdown, ``odt_blocks``) of an OpenDocument text (.odt: LibreOffice, OpenOffice, Google Docs' export).
    Page headers and footers live apart from the body, in its styles, and are left out."""

    def read(stream: IO[bytes]) -> tuple[str | None, list[str]]:
        with zipfile.ZipFile(stream) as document:
            content = ElementTree.fromstring(document.read("content.xml"))
            meta = document.read("meta.xml") if "meta.xml" in document.namelist() else b"<meta/>"
        title = ElementTree.fromstring(meta).findtext(".//dc:title", namespaces=ODF)
        styles = {  # an automatic style (a paragraph's direct formatting) names the style it is based on
            name: parent
            for style in content.iterfind("office:automatic-styles/style:style", ODF)
            if (name := style.get(odf("style:name")))
            and (parent := style.get(odf("style:parent-style-name")))
        }
        body = content.find("office:body/office:text", ODF)
        if body is None:
            raise UnreadableFile("not a readable OpenDocument text (its content holds no text body)")
        return title, list(odt_blocks(body, styles))

    title, blocks = zipped_document(data, "OpenDocument text", ".doc", read)
    return document_title(title), "\n\n".join(block for block in blocks if block)


# a slide's title, as a heading: the title slide's the presentation's
SLIDE_TITLES = {
    PP_PLACEHOLDER.CENTER_TITLE: "#",
    PP_PLACEHOLDER.TITLE: "##",
    PP_PLACEHOLDER.VERTICAL_TITLE: "##",
}
# placeholders whose paragraphs a layout shows as bullets
SLIDE_BULLETS = {
    PP_PLACEHOLDER.BODY,
    PP_PLACEHOLDER.OBJECT,
    PP_PLACEHOLDER.VERTICAL_BODY,
    PP_PLACEHOLDER.VERTICAL_OBJECT,
}
# placeholders that repeat on every slide from its master: not the slide's own text
SLIDE_FURNITURE = {
    PP_PLACEHOLDER.DATE,
    PP_PLACEHOLDER.FOOTER,
    PP_PLACEHOLDER.HEADER,
    PP_PLACEHOLDER.SLIDE_NUMBER,
}


def slide_shapes(shapes: Iterable[BaseShape]) -> Iterator[BaseShape]:
    """A slide's shapes in reading order, top to bottom and left to right, a group's shapes in its place."""
    for shape in sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0)):
        if isinstance(shape, GroupShape):  # not shape_type, which raises on a shape of no known kind
            yield from slide_shapes(shape.shapes)
        else:
            yield shape


def frame_paragraphs(frame: TextFrame, bullets: bool) -> list[str]:
    """The paragraphs of a slide's text frame, its line breaks kept (python-pptx gives each as a ``\\v``),
    as ``- `` items indented by their level where the frame shows ``bullets``."""
    paragraphs = []
    for paragraph in frame.paragraphs:
        text = as_text("\n".join(line.strip() for line in paragraph.text.split("\v")).strip())
        if text:
            paragraphs.append(f"{'  ' * paragraph.level}- {text}" if bullets else text)
    return paragraphs


def shape_block(shape: BaseShape) -> str:
    """A slide's shape in Markdown: a title placeholder a heading (``SLIDE_TITLES``), a table a line per
    row, a body placeholder's paragraphs ``- `` items indented by their level, another text box's
    paragraphs lines; a picture, a chart or a placeholder of the master's furniture nothing."""
    kind = shape.placeholder_format.type if shape.is_placeholder else None
    if kind in SLIDE_FURNITURE:
        return ""
    if shape.has_table:
        return table_text(
            [cell.text for cell in row.cells if not cell.is_spanned] for row in shape.table.rows
        )
    if not shape.has_text_frame:
        return ""
    if kind in SLIDE_TITLES:
        title = " ".join(shape.text_frame.text.split())
        return f"{SLIDE_TITLES[kind]} {title}" if title else ""
    return "\n".join(frame_paragraphs(shape.text_frame, bullets=kind in SLIDE_BULLETS))


def slide_markdown(slide: Slide) -> str:
    """A slide in Markdown: its shapes (``shape_block``) in reading order, then its speaker notes, a
    paragraph each."""
    blocks = [shape_block(shape) for shape in slide_shapes(slide.shapes)]
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    if notes is not None:
        blocks += frame_paragraphs(notes, bullets=False)
    return "\n\n".join(block for block in blocks if block)


def slides_text(data: bytes) -> tuple[str | None, str]:
    """(its document title, where it states one (``document_title``); its slides in Markdown
    (``slide_markdown``) one after the other, but hidden ones) of a PowerPoint presentation (.pptx)."""

    def read(stream: IO[bytes]) -> tuple[str, list[str]]:
        presentation = pptx.Presentation(stream)
        shown = [slide for slide in presentation.slides if slide.element.get("show") not in ("0", "false")]
        return presentation.core_properties.title, [slide_markdown(slide) for slide in shown]

    title, slides = zipped_document(data, "PowerPoint presentation", ".ppt", read)
    return document_title(title), "\n\n".join(slide for slide in slides if slide)


EPUB = {
    "container": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}


def epub_text(data: bytes) -> tuple[str | None, str]:
    """(its title (``document_title`` of its package's ``dc:title``); its chapters in reading order, those
    of its spine but the ones it marks non-linear (a cover, notes), each read as an HTML page is
    (``html_text``), one after the other) of an EPUB book (.epub, EPUB 2 or 3). A book whose chapters are
    encrypted (DRM) is unreadable."""

    def read(stream: IO[bytes]) -> tuple[str | None, list[str]]:
        with zipfile.ZipFile(stream) as book:
            container = ElementTree.fromstring(book.read("META-INF/container.xml"))
            rootfile = container.find(".//container:rootfile[@full-path]", EPUB)
            if rootfile is None:
                raise UnreadableFile("not a readable EPUB book (its container names no package document)")
            package_path = rootfile.get("full-path", "")
            package = ElementTree.fromstring(book.read(package_path))
            folder = posixpath.dirname(package_path)
            hrefs = {
                item.get("id"): posixpath.normpath(posixpath.join(folder, unquote(item.get("href", ""))))
                for item in package.iterfind("opf:manifest/opf:item", EPUB)
            }
            chapters = [
                hrefs[itemref.get("idref")]
                for itemref in package.iterfind("opf:spine/opf:itemref", EPUB)
                if itemref.get("linear") != "no"
            ]
            if "META-INF/encryption.xml" in book.namelist():  # fonts may be obfuscated; text must not be
                encryption = ElementTree.fromstring(book.read("META-INF/encryption.xml"))
                encrypted = {ref.get("URI") for ref in encryption.iterfind(".//enc:CipherReference", EPUB)}
                if encrypted & set(chapters):
                    raise UnreadableFile("encrypted EPUB (its chapters need a DRM key)")
            texts = [html_text(decoded(book.read(chapter), "html"))[1] for chapter in chapters]
            return package.findtext("opf:metadata/dc:title", namespaces=EPUB), texts

    title, chapters = zipped_document(data, "EPUB book", ".mobi", read)
    return document_title(title), "\n\n".join(chapter for chapter in chapters if chapter)


def notebook_markdown(notebook: str) -> str:
    """A Jupyter notebook's cells in Markdown: its Markdown and raw cells as written, its code cells fenced
    in the notebook's language, their outputs left out (a reader skims them; a table or an image is no
    text to search).

    >>> cells = [
    ...     {"cell_type": "markdown", "source": ["# Load\\n", "Read the file."]},
    ...     {"cell_type": "code", "source": "df = read()", "outputs": [{"text": "3 rows"}]},
    ...     {"cell_type": "code", "source": []},
    ... ]
    >>> metadata = {"language_info": {"name": "python"}}
    >>> print(notebook_markdown(json.dumps({"cells": cells, "metadata": metadata})))
    # Load
    Read the file.
    <BLANKLINE>
    ```python
    df = read()
    ```
    """
    try:
        content = json.loads(notebook)
    except json.JSONDecodeError as err:
        raise UnreadableFile(f"invalid JSON ({err.msg} at column {err.colno})", err.lineno) from err
    cells = content.get("cells") if isinstance(content, dict) else None
    if not isinstance(cells, list):
        raise UnreadableFile("not a Jupyter notebook (no list of cells)")
    language = ((content.get("metadata") or {}).get("language_info") or {}).get("name", "")
    blocks = []
    for cell in cells:
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        text = ("".join(source) if isinstance(source, list) else str(source)).strip("\n")
        if text.strip():
            blocks.append(fenced_code(text, language) if cell.get("cell_type") == "code" else text)
    return "\n\n".join(blocks)


# where a page names its charset, and in how many of its first bytes: an HTML page in a <meta>, a LaTeX
# file in its inputenc package's option
CHARSET_DECLARATIONS = {
    "html": (re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE), 2048),
    "latex": (re.compile(rb"^[^%\n]*?\\usepackage\[([\w-]+)\]\{inputenc\}", re.MULTILINE), 65536),
}
LATEX_CHARSETS = {"ansinew": "cp1252", "applemac": "mac_roman", "utf8": "utf-8", "utf8x": "utf-8"}


def decoded(raw: bytes, declaring: str | None = None) -> str:
    """A file's text: UTF-8 without a byte order mark or, for a page of a kind that can name its charset
    (``CHARSET_DECLARATIONS``: ``html``, ``latex``) and names one, that charset.

    >>> decoded(b'<meta charset="windows-1252"><p>caf\\xe9</p>', "html")
    '<meta charset="windows-1252"><p>café</p>'
    >>> decoded(b"\\\\usepackage[latin1]{inputenc} Caf\\xe9", "latex")
    '\\\\usepackage[latin1]{inputenc} Café'
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        declaration, within = CHARSET_DECLARATIONS[declaring] if declaring else (None, 0)
        declared = declaration.search(raw[:within]) if declaration else None
        if declared is None:
            raise UnreadableFile(f"not UTF-8 ({err.reason} at byte {err.start})") from err
        charset = declared[1].decode("ascii", "replace")
        charset = LATEX_CHARSETS.get(charset, charset)
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError) as err:
        raise UnreadableFile(f"not {charset}, the charset it declares ({err})") from err


def read_page(suffix: str, data: bytes) -> tuple[str | None, str]:
    """(title, text) of a page of a text folder, its bytes ``data`` read by the ``suffix`` of its name
    (``TEXT_SUFFIXES``): a .pdf file its text layer in Markdown (``pdf_text``), a .docx file and an .odt
    file their text in Markdown (``word_text``, ``odt_text``), a .pptx file its slides in Markdown
    (``slides_text``) and an .epub book its chapters in Markdown (``epub_text``), each titled by its
    stated document title, else its first heading; an .html or .htm page as a reader sees it
    (``html_text``); a Markdown page (.md, .markdown; .mdx without its JSX, ``mdx_markdown``) as it
    renders, without its front matter, HTML comments and a site generator's marks
    (``without_site_marks``), its setext headings written as ``#`` headings, titled by its front matter
    or else its first heading; a Jupyter notebook (.ipynb) as the Markdown of its cells
    (``notebook_markdown``), rendered the same way; a .rst file without its comments, its section titles
    written as ``#`` headings (``rst_as_markdown``), an AsciiDoc page (.adoc, .asciidoc) as Asciidoctor
    renders it, titled by its ``doctitle`` attribute (``adoc_as_markdown``), a LaTeX file (.tex, .ltx) as
    its text in Markdown, titled by its ``\\title`` (``latex_as_markdown``), and a .txt file as written,
    each titled by its first heading.
    """
    if suffix in HTML_SUFFIXES:
        return html_text(decoded(data, "html"))
    stated: Any = None
    if suffix == ".pdf":
        stated, text = pdf_text(data)
    elif suffix == ".docx":
        stated, text = word_text(data)
    elif suffix == ".odt":
        stated, text = odt_text(data)
    elif suffix == ".pptx":
        stated, text = slides_text(data)
    elif suffix == ".epub":
        stated, text = epub_text(data)
    else:
        text = decoded(data, "latex" if suffix in LATEX_SUFFIXES else None)
    if suffix == ".ipynb":
        text = atx_headings(
            markdown_links_as_text(without_site_marks(without_html_comments(notebook_markdown(text))))
        )
    elif suffix in MARKDOWN_SUFFIXES:
        metadata, text = front_matter(text)
        stated = metadata.get("title")
        if suffix == ".mdx":
            text = mdx_markdown(text)
        text = atx_headings(markdown_links_as_text(without_site_marks(without_html_comments(text))))
    elif suffix == ".rst":
        text = rst_as_markdown(text)
    elif suffix in ADOC_SUFFIXES:
        stated, text = adoc_as_markdown(text)
    elif suffix in LATEX_SUFFIXES:
        stated, text = latex_as_markdown(text)
    if isinstance(stated, str) and stated.strip():
        return stated.strip(), text
    return first_heading(text), text
