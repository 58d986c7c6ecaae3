"""What every stage script shares: arguments, params, logging."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from synthembed.io import report_input_errors, setup_logging
from synthembed.params import load_params


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--log", help="log file (overwritten)")
    return parser


def start_stage(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse arguments, set up logging, load and validate params."""
    args = parser.parse_args()
    setup_logging(args.log)
    report_input_errors()
    # Models come from packages or local folders; a hub download would hang on offline machines.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    params = load_params(args.params)
    logging.getLogger("synthembed").info("%s with %s", parser.prog, args.params)
    return args, params
