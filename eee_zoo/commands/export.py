"""``eee-zoo export``: write a Hub-ready checkpoint folder (weights, config.json, card)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import add_card_arguments

HELP = "Export a checkpoint as a Hub-ready folder: model.safetensors + config.json + README.md (the model card)."

DESCRIPTION = """\
Export a checkpoint as a Hub-ready folder: model.safetensors + config.json + README.md (the model card).

The model comes from one of two sources:
  --config CONFIG.json --weights WEIGHTS.safetensors
      build SelfEnsemble.from_config(CONFIG) and load WEIGHTS strictly (safetensors only), e.g. the output
      of a training run;
  --from-zoo SOURCE
      a checkpoint already in the zoo (same --dataset/--threat-model), loaded with load_model, e.g. to
      re-export it under NAME or into another folder.

The folder is written atomically to --out, by default the registry folder
<cards root>/<dataset>/<threat_model>/NAME, where `eee-zoo list` finds it. The card holds no results:
`eee-zoo benchmark NAME --write-card` adds them.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", help="name of the exported checkpoint (letters, digits, '_', '.', '-')")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="JSON", help="architecture (model.config) as JSON")
    source.add_argument("--from-zoo", metavar="SOURCE", help="name of a checkpoint in the zoo to re-export")
    parser.add_argument("--weights", type=Path, metavar="SAFETENSORS", help="weights for --config")
    add_card_arguments(parser)
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: the registry folder)")
    parser.add_argument("--repo-id", help="Hub repo id (default: <org>/<dataset>-<threat_model>-<name>)")
    parser.add_argument("--revision", default="main", help="Hub revision the card points at (default: main)")
    parser.add_argument("--recipe", help="training recipe, recorded in the card (e.g. training/recipes/x.yaml)")
    parser.add_argument("--training-seed", type=int, metavar="SEED", help="training seed, recorded in the card")
    parser.add_argument("--training-command", metavar="CMD", help="command that reproduces the training")
    parser.add_argument("--description", help="a paragraph for the top of the card")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stochastic", dest="stochastic", action="store_true", default=None, help="stochastic inference")
    mode.add_argument("--deterministic", dest="stochastic", action="store_false", help="deterministic inference")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in the folder")
    parser.set_defaults(_parser=parser)


def run(args: argparse.Namespace) -> int:
    from ..hub import checkpoint_files, export
    from ..registry import card_folder, get_card

    if args.config is not None and args.weights is None:
        args._parser.error("--config needs --weights")
    if args.from_zoo is not None and args.weights is not None:
        args._parser.error("--weights goes with --config, not --from-zoo")

    out = args.out or card_folder(args.name, args.dataset, args.threat_model, cards_dir=args.cards_dir)
    existing = checkpoint_files(out)
    if existing and not args.overwrite:  # before loading anything
        raise FileExistsError(f"{out} already holds a checkpoint ({', '.join(existing)}); pass --overwrite to replace")
    training = {}
    if args.config is not None:
        model = _from_files(args.config, args.weights)
    else:
        from ..loading import load_model

        model = load_model(args.from_zoo, args.dataset, args.threat_model, cards_dir=args.cards_dir)
        training = get_card(args.from_zoo, args.dataset, args.threat_model, cards_dir=args.cards_dir).training
    for key, value in (("recipe", args.recipe), ("seed", args.training_seed), ("command", args.training_command)):
        if value is not None:
            training[key] = value
    if args.stochastic is not None:
        model.set_stochastic(args.stochastic)

    export(
        model,
        args.name,
        out,
        dataset=args.dataset,
        threat_model=args.threat_model,
        repo_id=args.repo_id,
        revision=args.revision,
        training=training,
        description=args.description,
        overwrite=args.overwrite,
    )
    print(f"exported {args.name} ({args.dataset}/{args.threat_model}) to {out}")
    return 0


def _from_files(config_path: Path, weights_path: Path):
    from ..loading import load_weights
    from ..models import SelfEnsemble

    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON: {e}") from None
    try:
        model = SelfEnsemble.from_config(config)
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}") from None
    load_weights(model, weights_path)
    return model.eval()
