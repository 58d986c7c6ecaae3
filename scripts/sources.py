"""sources: checksums of the corpus source and of the eval sets, which lie outside the DAG (their paths are
param values). DVC runs this stage on every repro (always_changed); docs and metrics depend on the files
it writes, so an edited corpus or eval set reruns them, and an untouched one reruns nothing after it."""

from synthembed.cli import stage_parser, start_stage
from synthembed.io import write_json
from synthembed.params import eval_sets_fingerprint, source_fingerprint

parser = stage_parser(__doc__)
parser.add_argument("--out-docs", required=True)
parser.add_argument("--out-eval-sets", required=True)
args, params = start_stage(parser)

write_json(source_fingerprint(params["docs"]), args.out_docs)
write_json(eval_sets_fingerprint(params["evaluate"]), args.out_eval_sets)
