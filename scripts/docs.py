"""docs: normalise the corpus source into documents, evaluation judgments and rejected rows."""

from synthembed.cli import stage_parser, start_stage
from synthembed.corpus import clean_documents, corpus_frames, corpus_stats, read_corpus, sample_documents
from synthembed.io import write_json, write_parquet

parser = stage_parser(__doc__)
parser.add_argument("--out-docs", required=True)
parser.add_argument("--out-eval", required=True)
parser.add_argument("--out-rejected", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["docs"]

corpus = read_corpus(cfg["source"], cfg["path"], cfg["on_bad_row"])
read = len(corpus.docs) + len(corpus.rejected)
corpus = clean_documents(
    corpus,
    min_chars=cfg["min_chars"],
    max_chars=cfg["max_chars"],
    on_bad_row=cfg["on_bad_row"],
    lang=cfg["lang"],
    domain=cfg["domain"],
)
kept_before_sampling = len(corpus.docs)
corpus = sample_documents(corpus, cfg["max_docs"], params["seed"])
docs, judgments, rejected = corpus_frames(corpus)
write_parquet(docs, args.out_docs)
write_parquet(judgments, args.out_eval)
write_parquet(rejected, args.out_rejected)
write_json(
    corpus_stats(read, corpus) | {"not_sampled": kept_before_sampling - len(corpus.docs)}, args.out_stats
)
