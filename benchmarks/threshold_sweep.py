"""Time a parameter sweep as DVC experiments against the first run of the same project.

The first `dvc repro` runs every stage (the LLM calls included, unless its cache is already warm);
each `dvc exp run -S <param>=<value>` then reruns only the stages that read the param and those their
changed outputs feed, the LLM cache and DVC's run cache serving the rest.

    python benchmarks/threshold_sweep.py --project <git+DVC project> --param filter.min_cosine \\
        --values 0.3 0.35 0.4 0.45 0.5
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return time.monotonic() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--param", default="filter.min_cosine")
    parser.add_argument("--values", nargs="+", required=True)
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()

    first_s, output = timed(["dvc", "repro"], args.project)
    rows = [
        {
            "run": "first dvc repro",
            "seconds": round(first_s, 1),
            "stages": re.findall(r"Running stage '(\w+(?:@\w+)?)'", output),
        }
    ]
    print(json.dumps(rows[-1]), flush=True)
    subprocess.run(["git", "add", "dvc.lock", "params.yaml"], cwd=args.project, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline of the sweep"], cwd=args.project, check=True)
    for value in args.values:
        seconds, output = timed(["dvc", "exp", "run", "-S", f"{args.param}={value}"], args.project)
        stages = re.findall(r"Running stage '(\w+(?:@\w+)?)'", output)
        rows.append({"run": f"{args.param}={value}", "seconds": round(seconds, 1), "stages": stages})
        print(json.dumps(rows[-1]), flush=True)
    sweep = sum(r["seconds"] for r in rows[1:])
    summary = {"first_s": rows[0]["seconds"], "sweep_s": round(sweep, 1), "points": len(args.values)}
    print(json.dumps(summary), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": rows, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
