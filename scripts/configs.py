"""configs: per document a task type, a persona (top-k retrieved, one chosen) with its style, question
type, difficulty, languages, length and glossary terms."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.configs import (
    achieved_shares,
    choose_with_llm,
    control_targets,
    load_glossary,
    load_personas,
    persona_text,
    sampled_configs,
    top_k_indices,
)
from synthembed.corpus import passages
from synthembed.io import write_json, write_parquet
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--personas", required=True)
parser.add_argument("--glossary", required=True, help="domain terms per document domain")
parser.add_argument("--prompt", required=True, help="configuration prompt (policy llm)")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg, seed = params["configs"], params["seed"]

docs = pl.read_parquet(args.docs)
docs = docs.sample(n=min(cfg["n_docs"], docs.height), seed=seed).sort("doc_id")
personas = load_personas(args.personas)
embedder = load_embedder(params["embedder"], params["runtime"]["device"])
texts = passages(docs)
doc_vectors = embedder.encode(
    texts,
    normalize_embeddings=True,
    batch_size=params["embedder"]["batch_size"],
    show_progress_bar=True,
    convert_to_numpy=True,
).astype("float32")
persona_vectors = embedder.encode(
    [persona_text(p) for p in personas], normalize_embeddings=True, convert_to_numpy=True
).astype("float32")
k = min(cfg["persona_candidates"], len(personas))
nearest = top_k_indices(doc_vectors, persona_vectors, k)
candidates = [[personas[j] for j in row] for row in nearest]
doc_rows = docs.select("doc_id", "domain", "lang").with_columns(pl.Series("text", texts)).to_dicts()
rows = sampled_configs(doc_rows, candidates, cfg, load_glossary(args.glossary), seed)
stats = {"documents": len(rows)}

if cfg["policy"] == "llm":
    from synthembed.llm import open_llm
    from synthembed.prompts import load_prompt

    llm = open_llm(params["llm"], params["runtime"])
    failures = choose_with_llm(
        rows, candidates, texts, llm, load_prompt(args.prompt), cfg, params["queries"]["doc_chars"], seed
    )
    stats |= llm.stats_dict() | {"answer_failures": failures}

frame = pl.DataFrame(
    rows,
    schema_overrides={"domain_terms": pl.List(pl.String), "length_words": pl.Int64}
    | dict.fromkeys(["question_type", "difficulty"], pl.String),
    infer_schema_length=None,
)
stats["config_source"] = dict(frame["config_source"].value_counts().sort("config_source").iter_rows())
stats["shares"] = achieved_shares(rows, control_targets(cfg, k))
stats["with_domain_terms"] = int((frame["domain_terms"].list.len() > 0).sum())
stats["cross_lingual"] = int(frame["cross_lingual"].sum())
write_parquet(frame, args.out)
write_json(stats, args.out_stats)
