"""configs: per document a persona (top-k retrieved, one chosen), question type, difficulty, language,
length."""

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.configs import choose_with_llm, load_personas, persona_text, sampled_configs, top_k_indices
from synthembed.io import write_json, write_parquet
from synthembed.mine import passages
from synthembed.models import load_embedder

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--personas", required=True)
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
nearest = top_k_indices(doc_vectors, persona_vectors, cfg["persona_candidates"])
candidates = [[personas[j] for j in row] for row in nearest]
rows = sampled_configs(docs["doc_id"].to_list(), candidates, cfg, seed)
stats = {"documents": len(rows), "config_source": {}}

if cfg["policy"] == "llm":
    from synthembed.llm import open_llm
    from synthembed.prompts import load_prompt

    llm = open_llm(params["llm"], params["runtime"])
    failures = choose_with_llm(
        rows, candidates, texts, llm, load_prompt(args.prompt), cfg, params["queries"]["doc_chars"], seed
    )
    stats |= llm.stats.as_dict() | {"answer_failures": failures}

frame = pl.DataFrame(rows)
stats["config_source"] = dict(frame["config_source"].value_counts().iter_rows())
for column in ("question_type", "difficulty", "language", "persona"):
    stats[column] = dict(frame[column].value_counts().sort(column).iter_rows())
write_parquet(frame, args.out)
write_json(stats, args.out_stats)
