"""filtered: keep pairs whose generated text parsed, is well formed, does not loop or echo its prompt, is
not copied from its document, in the
requested language, close to its document, finds its document again, and is not a duplicate; every
other row goes to the rejected file with its reason and scores."""

from collections import Counter

import numpy as np
import polars as pl

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import passages
from synthembed.filtering import (
    LanguageChecker,
    anchor_and_positive,
    best_candidates,
    copied_span,
    cosine_thresholds,
    echoes,
    filter_decisions,
    format_reason,
    repetitive,
)
from synthembed.io import write_csv, write_json, write_parquet
from synthembed.models import load_embedder
from synthembed.plots import histogram_png
from synthembed.prompts import load_task_prompts, prompt_text
from synthembed.search import rank_of

parser = stage_parser(__doc__)
parser.add_argument("--queries", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--few-shot-prompt", required=True, help="the prompts of queries.prompt_style few_shot")
parser.add_argument("--report-prompt", required=True, help="the prompts of queries.prompt_style report")
parser.add_argument("--out", required=True)
parser.add_argument("--out-rejected", required=True)
parser.add_argument("--out-scores", required=True, help="CSV of scores and decisions, for plots")
parser.add_argument("--out-plot", required=True, help="PNG histogram of the cosine scores, kept vs rejected")
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg, emb = params["filter"], params["embedder"]

docs = pl.read_parquet(args.docs)
corpus = passages(docs)
doc_row = {doc_id: i for i, doc_id in enumerate(docs["doc_id"])}
pairs = pl.read_parquet(args.queries)
doc_index = np.array([doc_row[d] for d in pairs["doc_id"]], dtype=np.int64)
documents = [corpus[i] for i in doc_index]
texts, task_types = pairs["query"].to_list(), pairs["task_type"].to_list()
anchors, positives = zip(
    *(anchor_and_positive(t, q or "", d) for t, q, d in zip(task_types, texts, documents, strict=True)),
    strict=True,
)
scorable = [
    i
    for i, (q, e) in enumerate(zip(texts, pairs["parse_error"], strict=True))
    if e is None and q is not None and format_reason(q, cfg["min_words"], cfg["max_words"]) is None
]
n = len(texts)
cosines: list[float | None] = [None] * n
doc_ranks: list[int | None] = [None] * n
if scorable:
    model = load_embedder(emb, params["runtime"]["device"])
    encode = {"batch_size": emb["batch_size"], "normalize_embeddings": True, "show_progress_bar": True}
    # Retrieval queries carry the query instruction; the other tasks are symmetric texts.
    text_vectors = model.encode_query(
        [(emb["query_prompt"] if task_types[i] == "retrieval" else "") + texts[i] for i in scorable], **encode
    )
    round_trip = cfg["round_trip_top_k"] is not None
    # The round trip searches the whole corpus; otherwise only the scored rows' documents are needed.
    wanted = np.arange(len(corpus)) if round_trip else np.unique(doc_index[scorable])
    doc_vectors = np.zeros((len(corpus), text_vectors.shape[1]), dtype=np.float32)
    doc_vectors[wanted] = model.encode_document([corpus[i] for i in wanted], **encode)
    pair_scores = (text_vectors * doc_vectors[doc_index[scorable]]).sum(axis=1)
    for i, score in zip(scorable, pair_scores.tolist(), strict=True):
        cosines[i] = score
    if round_trip:
        searched = [j for j, i in enumerate(scorable) if task_types[i] != "classification"]
        ranks = rank_of(
            text_vectors[searched],
            doc_vectors,
            doc_index[[scorable[j] for j in searched]],
            cfg["round_trip_top_k"],
            params["search"],
        )
        for j, rank in zip(searched, ranks, strict=True):
            doc_ranks[scorable[j]] = rank
detected: list[str | None] = [None] * n
if cfg["language_check"] and scorable:
    checker = LanguageChecker(set(pairs["language"]) | set(pairs["doc_language"]))
    for i in scorable:
        language, probability = checker.detect(texts[i])
        detected[i] = language if probability >= cfg["language_min_probability"] else None
thresholds = cosine_thresholds(task_types, cosines, cfg)
style = params["queries"]["prompt_style"]
prompt = load_task_prompts(args.few_shot_prompt if style == "few_shot" else args.report_prompt)
echo_source = {t: prompt_text(prompt, t) for t in set(pairs["template"].drop_nulls())}
rows = []
for i in range(n):
    row = {
        "query": texts[i],
        "anchor": anchors[i],
        "parse_error": pairs["parse_error"][i],
        "cosine": cosines[i],
        "threshold": thresholds[task_types[i]],
        "copied": cfg["copied_min_words"] is not None
        and task_types[i] != "classification"
        and texts[i] is not None
        and copied_span(texts[i], documents[i], cfg["copied_min_words"]),
        "detected_language": detected[i],
        "language": pairs["language"][i],
        "repetitive": cfg["repetition_check"] and texts[i] is not None and repetitive(texts[i]),
        "echo": cfg["echo_min_words"] is not None
        and texts[i] is not None
        and echoes(texts[i], echo_source[pairs["template"][i]], cfg["echo_min_words"]),
    }
    if cfg["round_trip_top_k"] is not None and task_types[i] != "classification":
        row["doc_rank"] = doc_ranks[i]
    rows.append(row)
decisions = filter_decisions(rows, cfg, params["seed"])
# Several candidates of one configuration (queries.candidates > 1): the best one stays.
keys = list(zip(pairs["doc_id"], pairs["task_type"], strict=True))
decisions = best_candidates(keys, decisions, doc_ranks, cosines)
scored = pairs.with_columns(
    pl.Series("anchor", anchors, dtype=pl.String),
    pl.Series("positive", positives, dtype=pl.String),
    pl.Series("cosine", cosines, dtype=pl.Float64),
    pl.Series("cosine_threshold", [r["threshold"] for r in rows], dtype=pl.Float64),
    pl.Series("doc_rank", doc_ranks, dtype=pl.Int64),
    pl.Series("detected_language", detected, dtype=pl.String),
    pl.Series("reason", decisions, dtype=pl.String),
)
kept = scored.filter(pl.col("reason").is_null()).drop("reason")
rejected = scored.filter(pl.col("reason").is_not_null())
write_parquet(kept, args.out)
write_parquet(rejected, args.out_rejected)
decision = pl.col("reason").fill_null("kept").alias("decision")
plotted = scored.select("task_type", "cosine", "doc_rank", decision).drop_nulls("cosine")
write_csv(plotted, args.out_scores)
histogram_png(
    {
        d: plotted.filter(pl.col("decision") == d)["cosine"].to_list()
        for d in sorted(set(plotted["decision"]))
    },
    "cosine(generated text, document)",
    args.out_plot,
)
write_json(
    {
        "read": pairs.height,
        "kept": kept.height,
        "rejected": dict(Counter(r for r in decisions if r is not None)),
        "kept_by_task_type": dict(kept.group_by("task_type").len().sort("task_type").iter_rows()),
        "cosine_thresholds": thresholds,
    },
    args.out_stats,
)
