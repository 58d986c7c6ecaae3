"""configs (one shard of it): per document a task type, a persona (top-k retrieved, one chosen) with its
style, question type, difficulty, languages, length and glossary terms. The controls are drawn for all
sampled documents at once (stratified shares hold over the whole run); a shard retrieves personas and
asks the LLM for its own rows only. scripts/gather_configs.py puts the shards together."""

import numpy as np
import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.configs import (
    CONFIG_SCHEMA,
    choose_with_llm,
    load_glossary,
    load_personas,
    persona_text,
    sampled_configs,
)
from synthembed.corpus import passages
from synthembed.io import write_json, write_parquet
from synthembed.models import encode_batches, length_batches, load_embedder
from synthembed.search import exact_top_k
from synthembed.shards import shard_rows

parser = stage_parser(__doc__)
parser.add_argument("--docs", required=True)
parser.add_argument("--personas", required=True)
parser.add_argument("--glossary", required=True, help="domain terms per document domain")
parser.add_argument("--prompt", required=True, help="configuration prompt (policy llm)")
parser.add_argument("--shard", type=int, required=True, help="which of the shards in params to write")
parser.add_argument("--out", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg, seed = params["configs"], params["seed"]

docs = pl.read_parquet(args.docs)
docs = docs.sample(n=min(cfg["n_docs"], docs.height), seed=seed).sort("doc_id")
personas = load_personas(args.personas)
k = min(cfg["persona_candidates"], len(personas))
sampled = docs.height
docs = shard_rows(docs, params["shards"], args.shard)
embedder = load_embedder(params["embedder"], params["runtime"]["device"])
texts = passages(docs)
batches = length_batches([len(t) for t in texts], params["embedder"]["batch_size"])
order, vectors = encode_batches(
    embedder.encode_document, lambda rows: [texts[i] for i in rows], batches, "documents"
)
doc_vectors = vectors[np.argsort(order)] if len(order) else vectors
persona_vectors = embedder.encode_document(
    [persona_text(p) for p in personas], normalize_embeddings=True, convert_to_numpy=True
).astype("float32")
nearest = exact_top_k(doc_vectors, persona_vectors, k)[1] if len(order) else []
candidates = [[personas[j] for j in row] for row in nearest]
doc_rows = docs.select("doc_id", "domain", "lang").with_columns(pl.Series("text", texts)).to_dicts()
glossary = load_glossary(args.glossary)
rows = sampled_configs(
    doc_rows, candidates, k, cfg, glossary, seed, total=sampled, shard_ids=params["shards"], shard=args.shard
)
stats = {"documents": len(rows)}

if cfg["policy"] == "llm":
    from synthembed.llm import open_llm
    from synthembed.prompts import load_prompt

    llm = open_llm(params["llm"], params["runtime"])
    failures = choose_with_llm(
        rows,
        candidates,
        texts,
        llm,
        load_prompt(args.prompt),
        cfg,
        cfg["doc_chars"],
        seed,
        params["llm"]["temperature"],
    )
    stats |= llm.stats_dict() | {"answer_failures": failures}

frame = pl.DataFrame(rows, schema=CONFIG_SCHEMA)
write_parquet(frame, args.out)
write_json(stats, args.out_stats)
