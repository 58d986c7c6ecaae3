"""docs: normalise the corpus source into documents, evaluation judgments and rejected rows. Documents
stream through reading and cleaning and are spilled in chunks, so memory does not grow with the corpus."""

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import (
    corpus_frames,
    corpus_from_params,
    corpus_stats,
    judgments_of,
    write_documents,
)
from synthembed.io import write_json, write_parquet

parser = stage_parser(__doc__)
parser.add_argument("--out-docs", required=True)
parser.add_argument("--out-eval", required=True)
parser.add_argument("--out-rejected", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["docs"]

corpus = corpus_from_params(cfg)
kept_before_sampling, ids = write_documents(corpus, args.out_docs, cfg["max_docs"], params["seed"])
sampled = set(ids.to_list())
judgments, eval_queries_dropped = judgments_of(corpus.judgments, sampled)
eval_frame, rejected_frame = corpus_frames(judgments, corpus.rejected)
write_parquet(eval_frame, args.out_eval)
write_parquet(rejected_frame, args.out_rejected)
read = kept_before_sampling + len(corpus.rejected)
write_json(
    corpus_stats(read, len(sampled), judgments, corpus.rejected)
    | {
        "not_sampled": kept_before_sampling - len(sampled),
        "eval_queries_dropped": eval_queries_dropped,
        "split": dict(corpus.split),
    },
    args.out_stats,
)
