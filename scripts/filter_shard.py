"""filtered (one shard of it): the checks of each generated text that need no model (format, looping,
prompt echo, copied, language) for this shard's rows, and the embeddings of this shard's batches of texts
and documents. scripts/filter.py scores the gathered vectors and makes the decisions that compare rows
(thresholds by percentile, round trip over the whole corpus, duplicates, best of k).

The queries and documents are read in slices, never whole: memory follows the slice, not the run."""

import numpy as np
import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passage_column, read_passages
from synthembed.filtering import (
    CHECK_SCHEMA,
    LanguageChecker,
    form_reason,
    text_checks,
    word_ngrams,
)
from synthembed.io import CHUNK_ROWS, read_rows, write_arrays, write_parquet_row_groups
from synthembed.models import anchor_prompt, encode_batches, length_batches, load_embedder
from synthembed.prompts import load_task_prompts, prompt_text
from synthembed.shards import shard_items, shard_position

parser = stage_parser(__doc__)
parser.add_argument("--queries", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--few-shot-prompt", required=True, help="the prompts of queries.prompt_style few_shot")
parser.add_argument("--report-prompt", required=True, help="the prompts of queries.prompt_style report")
parser.add_argument("--shard", type=int, required=True, help="which of the shards in params to write")
parser.add_argument("--out", required=True, help="per-row checks of the shard's rows")
parser.add_argument("--out-vectors", required=True, help=".npz of the shard's text and document vectors")
args, params = start_stage(parser)
cfg, emb, shards = params["filter"], params["embedder"], params["shards"]
position, count = shard_position(shards, args.shard)

queries = pl.scan_parquet(args.queries)
n_rows = queries.select(pl.len()).collect().item()


def distinct(column: str) -> set[str]:
    return set(queries.select(pl.col(column).drop_nulls().unique()).collect()[column])


style = params["queries"]["prompt_style"]
prompt = load_task_prompts(args.few_shot_prompt if style == "few_shot" else args.report_prompt)
echo_grams = {}
if cfg["echo_min_words"] is not None:
    echo_grams = {
        t: set(word_ngrams(prompt_text(prompt, t), cfg["echo_min_words"])) for t in distinct("template")
    }
checker = LanguageChecker(distinct("language") | distinct("doc_language")) if cfg["language_check"] else None


def shard_checks():
    """The shard's rows (row i goes to the shard at position i % shards) with their checks, a slice of
    the queries file at a time."""
    for start in range(0, n_rows, CHUNK_ROWS):
        part = (
            queries.slice(start, CHUNK_ROWS)
            .with_row_index("row", offset=start)
            .filter(pl.col("row") % count == position)
            .select("row", "doc_id", "task_type", "language", "template", "query", "parse_error", "echo_text")
            .collect()
        )
        documents = dict(read_passages(args.docs, part["doc_id"]).iter_rows())
        missing = part.filter(~pl.col("doc_id").is_in(list(documents)))
        if missing.height:
            row, doc_id = missing.row(0)[:2]
            raise ValueError(
                f"{args.queries}: row {row} names doc_id {doc_id!r}, which is not in {args.docs}"
            )
        yield text_checks(part, documents, cfg, echo_grams, checker.detect if checker else None)


write_parquet_row_groups(shard_checks(), CHECK_SCHEMA, args.out)


def query_text(text: str, task_type: str) -> str:
    return anchor_prompt(task_type, emb["query_prompt"]) + text


# Every row's form is needed (not only this shard's): the batches are drawn over all texts to embed, so
# any split into shards encodes the same batches.
scorable_rows, text_lengths = [], []
for start in range(0, n_rows, CHUNK_ROWS):
    part = queries.slice(start, CHUNK_ROWS).select("query", "parse_error", "task_type").collect()
    for row, (text, parse_error, task_type) in enumerate(part.iter_rows(), start=start):
        if form_reason(text, parse_error, cfg) is None:
            scorable_rows.append(row)
            text_lengths.append(len(query_text(text, task_type)))

no_rows, no_vectors = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
arrays = {"query_rows": no_rows, "query_vectors": no_vectors, "doc_rows": no_rows, "doc_vectors": no_vectors}
if scorable_rows:
    model = load_embedder(emb, params["runtime"]["device"])
    scored = np.array(scorable_rows, dtype=np.int64)

    def fetch_texts(indices: list[int]) -> list[str]:
        part = read_rows(args.queries, scored[indices], ["query", "task_type"])
        return [query_text(text, task_type) for text, task_type in part.iter_rows()]

    batches = shard_items(length_batches(text_lengths, emb["batch_size"]), shards, args.shard)
    order, arrays["query_vectors"] = encode_batches(model.encode_query, fetch_texts, batches, "texts")
    arrays["query_rows"] = scored[order]

    docs = pl.scan_parquet(args.docs)
    # The round trip searches the whole corpus; otherwise only the scored rows' documents are needed.
    if cfg["round_trip_top_k"] is not None:
        wanted = np.arange(docs.select(pl.len()).collect().item())
    else:
        scored_doc_ids = (
            queries.select("doc_id")
            .with_row_index("row")
            .filter(pl.col("row").is_in(pl.Series(scorable_rows).implode()))
            .select("doc_id")
        )
        wanted = (
            docs.select("doc_id")
            .with_row_index("doc_row")
            .join(scored_doc_ids.unique(), on="doc_id", how="semi")
            .select(pl.col("doc_row").cast(pl.Int64).sort())
            .collect()["doc_row"]
            .to_numpy()
        )
    doc_lengths = docs.select(passage_column().str.len_chars()).collect()["passage"].to_numpy()[wanted]

    def fetch_documents(indices: list[int]) -> list[str]:
        return (
            read_rows(args.docs, wanted[indices], ["title", "text"])
            .select(passage_column())["passage"]
            .to_list()
        )

    batches = shard_items(length_batches(doc_lengths.tolist(), emb["batch_size"]), shards, args.shard)
    order, arrays["doc_vectors"] = encode_batches(
        model.encode_document, fetch_documents, batches, "documents"
    )
    arrays["doc_rows"] = wanted[order]
write_arrays(arrays, args.out_vectors)
