"""The ``korclf`` command: ``train``, ``predict``, ``profile`` and ``baseline``.

Every sub-command turns a :class:`~korclf.errors.KorclfError` into one line on stderr and exit
status 2, so users see what to fix rather than a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from .errors import KorclfError

CONFIG_EXTENSIONS = (".yaml", ".yml", ".json")


def _train(argv: list[str]) -> int:
    from .run import main as run_main

    return run_main(argv)


def _profile(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="korclf profile", description="Profile a data set before training.")
    parser.add_argument("source", help="A run config (YAML/JSON) or a data file (csv/tsv/jsonl/parquet).")
    parser.add_argument("--text-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--tokenizer", default=None, help="Tokenizer folder or hub id for token lengths.")
    parser.add_argument("--output-dir", default="outputs/profile")
    args = parser.parse_args(argv)
    from .profile import format_profile, profile_files

    tokenizer = None
    if args.source.endswith(CONFIG_EXTENSIONS):
        from .arguments import SCRATCH, parse_config

        model_args, data_args, _ = parse_config([args.source])
        paths = {name: path for name, path in (("train", data_args.train_file), ("validation", data_args.validation_file),
                                               ("test", data_args.test_file)) if path}
        text_column = args.text_column or data_args.text_column
        label_column = args.label_column or data_args.label_column
        tokenizer_name = args.tokenizer or (model_args.tokenizer_name or model_args.model_name_or_path)
        if tokenizer_name == SCRATCH:
            tokenizer_name = None
    else:
        paths = {"train": args.source}
        text_column = args.text_column or "text"
        label_column = args.label_column
        tokenizer_name = args.tokenizer
    if tokenizer_name:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    profile = profile_files(paths, text_column, label_column, tokenizer=tokenizer, output_dir=args.output_dir)
    print(format_profile(profile))
    print(f"\nWrote {os.path.join(args.output_dir, 'profile.json')} and plots to {args.output_dir}")
    return 0


def _baseline(argv: list[str]) -> int:
    from .baseline import run_baseline_from_config

    run_baseline_from_config(argv)
    return 0


def _predict(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="korclf predict", description="Classify a file with a trained model folder.")
    parser.add_argument("--model", required=True, help="A trained model folder, or a k-fold folder (ensemble.json).")
    parser.add_argument("--input", required=True, help="csv / tsv / json / jsonl / parquet file to classify.")
    parser.add_argument("--text-column", default=None, help="Text column, if not the one the model was trained on.")
    parser.add_argument("--id-column", default=None, help="Id column (default: the training run's).")
    parser.add_argument("--output", default=None, help="Output tsv (default: <input stem>.predictions.tsv).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
    args = parser.parse_args(argv)
    from .predict import predict

    output = args.output or f"{os.path.splitext(args.input)[0]}.predictions.tsv"
    predictions = predict(args.model, args.input, text_column=args.text_column, id_column=args.id_column,
                          output_file=output, batch_size=args.batch_size, device=args.device)
    print(f"Wrote {len(predictions.ids)} predictions to {output}")
    return 0


COMMANDS = {"train": _train, "predict": _predict, "profile": _profile, "baseline": _baseline}


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: korclf {train,predict,profile,baseline} ...\n"
              "  korclf train CONFIG.yaml [--key value ...]   fine-tune, evaluate and predict\n"
              "  korclf predict --model DIR --input FILE       classify a file (predictions tsv)\n"
              "  korclf profile CONFIG_OR_FILE                 data profile (profile.json + plots)\n"
              "  korclf baseline CONFIG.yaml                   TF-IDF + logistic-regression floor", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except KorclfError as error:
        print(f"korclf: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
