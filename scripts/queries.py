"""queries: the generator writes one query per configuration, batched, through the LLM cache."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json, write_parquet
from synthembed.llm import open_llm
from synthembed.mine import passage
from synthembed.prompts import load_prompt, query_messages
from synthembed.queries import clean_query

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--configs", required=True)
parser.add_argument("--prompt", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)

configs = pl.read_parquet(args.configs)
docs = pl.read_parquet(args.docs).select("doc_id", "title", "text")
rows = configs.join(docs, on="doc_id", how="left", maintain_order="left")
prompt = load_prompt(args.prompt)
llm = open_llm(params["llm"], params["runtime"])
messages = [
    query_messages(prompt, row, passage(row["title"], row["text"]), params["queries"]["doc_chars"])
    for row in rows.iter_rows(named=True)
]
raw = llm.generate(messages, seed=params["seed"], desc="queries")
frame = configs.with_columns(
    pl.Series("query", [clean_query(r) for r in raw], dtype=pl.String),
    pl.Series("raw_output", raw, dtype=pl.String),
    pl.Series("prompt_hash", [llm.key(m, params["seed"]) for m in messages], dtype=pl.String),
    pl.lit(params["llm"]["model"]).alias("model"),
)
write_parquet(frame, args.out)
write_json({"read": configs.height, "written": frame.height} | llm.stats.as_dict(), args.out_stats)
