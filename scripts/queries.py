"""queries: the generator writes, per configuration, a query, paraphrase, label or translation (and
for code documents a hard negative), through the LLM cache."""

from collections import Counter

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages
from synthembed.generation import generate_queries
from synthembed.io import write_json, write_parquet
from synthembed.llm import open_llm
from synthembed.prompts import load_task_prompts

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--configs", required=True)
parser.add_argument("--few-shot-prompt", required=True, help="prompts of queries.prompt_style few_shot")
parser.add_argument("--report-prompt", required=True, help="prompts of queries.prompt_style report")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["queries"]

configs = pl.read_parquet(args.configs)
docs = pl.read_parquet(args.docs).select("doc_id", "title", "text")
documents = passages(configs.select("doc_id").join(docs, on="doc_id", how="left", maintain_order="left"))
prompt = load_task_prompts(args.few_shot_prompt if cfg["prompt_style"] == "few_shot" else args.report_prompt)
llm = open_llm(params["llm"], params["runtime"])
rows = generate_queries(configs.to_dicts(), documents, prompt, llm, cfg, params["seed"])
optional = ["label", "label_description", "raw_output", "parse_error", "llm_negative", "llm_negative_error"]
frame = pl.DataFrame(
    rows, schema=configs.schema | dict.fromkeys(["template", "query", "prompt_hash", *optional], pl.String)
)
frame = frame.with_columns(pl.lit(params["llm"]["model"]).alias("model"))
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
    | llm.stats_dict(),
    args.out_stats,
)
