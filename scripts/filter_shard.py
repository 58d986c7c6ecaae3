"""filtered (one shard of it): the checks of each generated text that need no model (copied, looping,
prompt echo, language) for this shard's rows, and the embeddings of this shard's batches of texts and
documents. scripts/filter.py scores the gathered vectors and makes the decisions that compare rows
(thresholds by percentile, round trip over the whole corpus, duplicates, best of k)."""

import numpy as np
import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages
from synthembed.filtering import CHECK_SCHEMA, LanguageChecker, scorable_rows, text_checks, word_ngrams
from synthembed.io import write_arrays, write_parquet
from synthembed.models import encode_batches, length_batches, load_embedder
from synthembed.prompts import load_task_prompts, prompt_text
from synthembed.shards import shard_items

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

docs = pl.read_parquet(args.docs)
corpus = passages(docs)
doc_row = {doc_id: i for i, doc_id in enumerate(docs["doc_id"])}
pairs = pl.read_parquet(args.queries)
doc_index = np.array([doc_row[d] for d in pairs["doc_id"]], dtype=np.int64)
texts, task_types = pairs["query"].to_list(), pairs["task_type"].to_list()
templates = pairs["template"].to_list()
scorable = scorable_rows(texts, pairs["parse_error"].to_list(), cfg)

style = params["queries"]["prompt_style"]
prompt = load_task_prompts(args.few_shot_prompt if style == "few_shot" else args.report_prompt)
echo_grams = {
    t: set(word_ngrams(prompt_text(prompt, t), cfg["echo_min_words"])) if cfg["echo_min_words"] else set()
    for t in set(pairs["template"].drop_nulls())
}
checker = None
if cfg["language_check"]:
    checker = LanguageChecker(set(pairs["language"]) | set(pairs["doc_language"]))
is_scorable = set(scorable)
checks = []
for i in shard_items(list(range(pairs.height)), shards, args.shard):
    detected = None
    if checker is not None and i in is_scorable:
        language, probability = checker.detect(texts[i])
        detected = language if probability >= cfg["language_min_probability"] else None
    grams = echo_grams[templates[i]] if texts[i] is not None else set()
    checks.append(
        {"row": i, "detected_language": detected}
        | text_checks(texts[i], corpus[doc_index[i]], task_types[i], grams, cfg)
    )
write_parquet(pl.DataFrame(checks, schema=CHECK_SCHEMA), args.out)

no_rows, no_vectors = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
arrays = {"query_rows": no_rows, "query_vectors": no_vectors, "doc_rows": no_rows, "doc_vectors": no_vectors}
if scorable:
    model = load_embedder(emb, params["runtime"]["device"])
    # Retrieval queries carry the query instruction; the other tasks are symmetric texts.
    query_texts = [(emb["query_prompt"] if task_types[i] == "retrieval" else "") + texts[i] for i in scorable]
    batches = shard_items(length_batches(query_texts, emb["batch_size"]), shards, args.shard)
    order, arrays["query_vectors"] = encode_batches(model.encode_query, query_texts, batches, "texts")
    arrays["query_rows"] = np.array(scorable, dtype=np.int64)[order]
    # The round trip searches the whole corpus; otherwise only the scored rows' documents are needed.
    wanted = np.arange(len(corpus)) if cfg["round_trip_top_k"] is not None else np.unique(doc_index[scorable])
    doc_texts = [corpus[j] for j in wanted]
    batches = shard_items(length_batches(doc_texts, emb["batch_size"]), shards, args.shard)
    order, arrays["doc_vectors"] = encode_batches(model.encode_document, doc_texts, batches, "documents")
    arrays["doc_rows"] = wanted[order]
write_arrays(arrays, args.out_vectors)
