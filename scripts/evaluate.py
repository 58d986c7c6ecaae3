"""metrics: retrieval metrics of the base, tuned and (when merged) merged models on every real eval set and
on the synthetic dev split (one set per task type), their gains, and every stage's counts."""

from pathlib import Path

import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages, read_beir_set
from synthembed.evaluate import compare, eval_sets, evaluate_model, synthetic_dev_sets
from synthembed.io import read_json, write_csv, write_json
from synthembed.mine import DocumentMemo
from synthembed.models import anchor_prompt, load_embedder

parser = stage_parser(__doc__)
parser.add_argument(
    "--model", required=True, help="tuned model folder; its merged/ subfolder is evaluated too"
)
parser.add_argument("--docs", required=True)
parser.add_argument("--eval", required=True, help="judgments the corpus source carries (searched in docs)")
parser.add_argument("--balanced", required=True, help="its dev split becomes the synthetic_dev eval sets")
parser.add_argument("--stats", nargs="+", required=True, help="stage statistics to include as counts")
parser.add_argument("--out", required=True)
parser.add_argument("--out-plot", required=True, help="CSV of nDCG@10 per set and model")
args, params = start_stage(parser)
emb, cfg = params["embedder"], params["evaluate"]

docs = pl.read_parquet(args.docs)
corpus = dict(zip(docs["doc_id"], passages(docs), strict=True))
balanced = pl.read_parquet(args.balanced)
over_docs, over_labels = synthetic_dev_sets(balanced.filter(pl.col("split") == "dev"))
real_sets = eval_sets(pl.read_parquet(args.eval))
sets = real_sets | over_docs
# Real eval sets hold search queries; a synthetic dev set's queries are anchors of its task type.
prompts = {name: emb["query_prompt"] for name in real_sets} | {
    name: anchor_prompt(name.removeprefix("synthetic_dev_"), emb["query_prompt"]) for name in over_docs
}
classified = balanced.filter(pl.col("task_type") == "classification")
labels = dict(classified.select("label", "positive").unique(subset="label", keep="first").iter_rows())
beir_sets = [
    (
        read_beir_set(s["path"], s.get("split", "dev"), s.get("name")),
        s.get("query_prompt", emb["query_prompt"]),
    )
    for s in cfg["sets"]
]
device = params["runtime"]["device"]


def evaluate(path: str | None) -> dict[str, dict[str, float]]:
    model = load_embedder(emb, device, path=path)
    documents = DocumentMemo(model)  # a BEIR set built from the same corpus is not encoded twice
    results = evaluate_model(model, corpus, sets, prompts, cfg["batch_size"], documents)
    if over_labels:
        results |= evaluate_model(model, labels, over_labels, {}, cfg["batch_size"], documents)
    for beir, prompt in beir_sets:
        one = {beir.name: (beir.queries, beir.relevant)}
        results |= evaluate_model(model, beir.corpus, one, {beir.name: prompt}, cfg["batch_size"], documents)
    return results


models = {"base": None, "tuned": args.model}
if (Path(args.model) / "merged").is_dir():
    models["merged"] = str(Path(args.model) / "merged")
results = compare({name: evaluate(path) for name, path in models.items()})
counts = {Path(p).stem: read_json(p) for p in args.stats}
write_json({"eval": results, "counts": counts}, args.out)
rows = [
    {"run": f"{s} {m}", "eval_set": s, "model": m, "ndcg@10": results[s][m]["ndcg@10"]}
    for s in results
    for m in models
]
write_csv(pl.DataFrame(rows), args.out_plot)
