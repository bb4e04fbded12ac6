"""``eee-zoo push FOLDER``: upload a checkpoint folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Upload a checkpoint folder (card, config.json, weights) to the Hugging Face Hub with HfApi.upload_folder."

DESCRIPTION = """\
Upload a checkpoint folder (card, config.json, weights) to the Hugging Face Hub with HfApi.upload_folder.

The folder is checked first (valid card, weights matching its sha256). The repo is created if needed.
Afterwards the local card's revision is pinned to the new commit (unless --no-pin), so load_model
downloads exactly what was pushed. Needs the network and a write token (--token, $HF_TOKEN or
`hf auth login`).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("folder", type=Path, help="checkpoint folder (from `eee-zoo export`)")
    parser.add_argument("--repo-id", help="Hub repo id (default: the card's repo_id)")
    parser.add_argument("--revision", help="branch to push to (default: main); created if missing")
    parser.add_argument("--token", help="Hub token (default: $HF_TOKEN or the stored login)")
    parser.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    parser.add_argument("--commit-message", help="commit message")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave the card's revision as it is")


def run(args: argparse.Namespace) -> int:
    from ..hub import push

    commit = push(
        args.folder,
        args.repo_id,
        revision=args.revision,
        token=args.token,
        private=args.private,
        commit_message=args.commit_message,
        pin=args.pin,
    )
    print(f"pushed {args.folder} at commit {commit}")
    return 0
