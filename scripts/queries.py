"""queries (one shard of it): the generator writes, per configuration, a query, paraphrase, label or
translation (and for code documents a hard negative), through the LLM cache; with queries.generator
doc2query the self-trained doc2query model writes the retrieval queries. scripts/gather_queries.py
puts the shards together."""

from collections import Counter

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages
from synthembed.doc2query import load_doc2query_prompt, model_fingerprint
from synthembed.generation import doc2query_llm_params, generate_queries, source_opening
from synthembed.io import write_json, write_parquet
from synthembed.llm import open_llm
from synthembed.models import load_embedder
from synthembed.params import drawn_labels
from synthembed.prompts import load_task_prompts, truncate
from synthembed.shards import shard_rows
from synthembed.structural import example_pool, nearest_examples

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--configs", required=True)
parser.add_argument(
    "--structural", required=True, help="structural pairs: worked examples when examples: corpus"
)
parser.add_argument("--few-shot-prompt", required=True, help="prompts of queries.prompt_style few_shot")
parser.add_argument("--report-prompt", required=True, help="prompts of queries.prompt_style report")
parser.add_argument("--doc2query", required=True, help="doc2query stage's model")
parser.add_argument("--doc2query-prompt", required=True, help="prompts/doc2query.yaml")
parser.add_argument("--shard", type=int, required=True, help="which of the shards in params to write")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["queries"]

configs = shard_rows(pl.read_parquet(args.configs), params["shards"], args.shard)
docs = pl.read_parquet(args.docs).select("doc_id", "title", "text")
config_docs = configs.select("doc_id", "domain").join(docs, on="doc_id", how="left", maintain_order="left")
documents = passages(config_docs)
sources = [source_opening(*doc) for doc in config_docs.select("title", "text", "domain").iter_rows()]
prompt = load_task_prompts(
    args.few_shot_prompt if cfg["prompt_style"] == "few_shot" else args.report_prompt,
    drawn_labels(params["configs"]["question_types"]),
)
examples = None
if cfg["examples"] == "corpus":
    pool = example_pool(pl.read_parquet(args.structural), cfg["example_pool"], params["seed"])
    model = load_embedder(params["embedder"], params["runtime"]["device"])
    encode = {"batch_size": params["embedder"]["batch_size"], "normalize_embeddings": True}
    chosen = nearest_examples(
        model.encode_document([truncate(d, cfg["doc_chars"]) for d in documents], **encode),
        configs["doc_id"].to_list(),
        model.encode_document([truncate(p, cfg["doc_chars"]) for p in pool["positive"]], **encode),
        pool["doc_id"].to_list(),
        cfg["corpus_examples"],
    )
    pairs = list(zip(pool["positive"], pool["query"], strict=True))
    examples = [[pairs[j] for j in row] for row in chosen]
llm = open_llm(params["llm"], params["runtime"])
doc2query = None
if cfg["generator"] == "doc2query":
    local = doc2query_llm_params(params["llm"], args.doc2query)
    doc2query_llm = open_llm(local, params["runtime"], model_name=model_fingerprint(args.doc2query))
    doc2query_prompt = load_doc2query_prompt(args.doc2query_prompt)
    texts = config_docs["text"].to_list()  # what it was trained on: structural positives carry no title
    doc2query = (doc2query_prompt, doc2query_llm, params["doc2query"]["doc_chars"], texts)
rows = generate_queries(
    configs.to_dicts(), documents, prompt, llm, cfg, params["seed"], examples, doc2query, sources
)
optional = [
    "label",
    "label_description",
    "raw_output",
    "parse_error",
    "llm_negative",
    "llm_negative_error",
    "echo_text",
]
frame = pl.DataFrame(
    rows,
    schema=configs.schema
    | {"candidate": pl.Int64}
    | dict.fromkeys(["template", "query", "prompt_hash", "model", *optional], pl.String),
)
write_parquet(frame, args.out)
errors = Counter(str(e).split(":")[0] for e in frame["parse_error"].drop_nulls())
write_json(
    {
        "read": configs.height,
        "written": frame.height,
        "answered": frame["query"].is_not_null().sum(),
        "unusable": dict(errors),
        "by_task_type": dict(frame.group_by("task_type").len().sort("task_type").iter_rows()),
        "llm_negatives": frame["llm_negative"].is_not_null().sum(),
    }
    | llm.stats_dict()
    | ({"doc2query": doc2query[1].stats_dict()} if doc2query else {}),
    args.out_stats,
)
