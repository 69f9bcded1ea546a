#!/usr/bin/env python
"""Multi-encoder (shared and unshared) against the single-encoder sentence pair on KLUE-NLI, same backbone and budget.

    python bench/bench_multi_encoder.py --backbone scratch|e5 [--train-rows N] [--epochs E] [--lr LR]

Three classifiers read ``klue_nli`` (premise, hypothesis → entailment / neutral / contradiction):

* ``pair``: one encoder over ``[CLS] premise [SEP] hypothesis`` (``text_column`` + ``text_pair_column``),
  korclf's pooled head (``model_kind: sequence`` with ``pooling`` set);
* ``multi_shared``: ``model_kind: multi_encoder``, one encoder reads each column on its own, fused by
  ``--fusion``;
* ``multi_unshared``: the same with one encoder per column (twice the encoder parameters).

Backbones: ``scratch`` is korclf's from-scratch BERT (``scratch_*`` sizes; tokenizer trained on the
training texts); ``e5`` is multilingual-e5-small (12 layers, hidden 384) converted by
``/work/shared/tools/e5_to_hf.py`` with the vocabulary trimmed to the klue_nli texts, built once into
``~/.cache/korclf/e5_small_klue_nli`` (outside the repository) and reused. e5 has no trained pooler, so
its default ``--pooling`` is ``mean``; ``scratch`` defaults to ``pooler``; the same for all three models.
All three run through the training recipe (``korclf.run.run``) with the same lr, epochs, batch size and
seed; the recipe holds out 10 % of the training rows (stratified) as validation, which is not used
(``eval_strategy: no``), so the test split stays unseen. Scores are on the 600 test rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, budget_options, print_table, run_recipe, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = os.path.join(SHARED_DATA, "klue_nli")
E5_TOOL = os.environ.get("KORCLF_E5_TOOL", os.path.join(SHARED_DATA, "..", "tools", "e5_to_hf.py"))
E5_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "korclf", "e5_small_klue_nli")
MODELS = ("pair", "multi_shared", "multi_unshared")


def e5_path(folder: str) -> str:
    """The trimmed e5 checkpoint: reused when ``folder`` holds one, else built once from the klue_nli texts."""
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        corpus = os.path.join(workdir, "klue_nli_texts.txt")
        with open(corpus, "w", encoding="utf-8") as out:
            for split in ("train", "test"):
                with open(os.path.join(DATA, f"{split}.tsv"), encoding="utf-8", newline="") as handle:
                    for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                        out.write(f"{row['premise']}\n{row['hypothesis']}\n")
        print(f"building the trimmed e5 checkpoint in {folder} (once)", flush=True)
        subprocess.run([sys.executable, E5_TOOL, folder, "--trim-vocab", corpus], check=True)
    return folder


def count_parameters(folder: str) -> int:
    """Parameters of the saved classifier (shared encoder weights counted once)."""
    import korclf.models  # noqa: F401  (registers korclf's model types)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def model_overrides(name: str, args) -> dict:
    if name == "pair":
        return {"model_kind": "sequence", "text_column": "premise", "text_pair_column": "hypothesis",
                "pooling": args.pooling, "max_length": "auto"}
    return {"model_kind": "multi_encoder", "text_columns": ["premise", "hypothesis"], "pooling": args.pooling,
            "share_encoder": name == "multi_shared", "fusion": args.fusion, "max_length": ["auto", "auto"]}


def train(name: str, args, backbone: dict, workdir: str) -> dict:

    config = {
        **backbone,
        **model_overrides(name, args),
        "train_file": os.path.join(DATA, "train.tsv"),
        "test_file": os.path.join(DATA, "test.tsv"),
        "id_column": "guid",
        "label_column": "label",
        **budget_options(workdir, name, args, eval_batch_size=64, logging_steps=20),
    }
    results, seconds = run_recipe(config)
    with open(os.path.join(config["output_dir"], "config.json"), encoding="utf-8") as handle:
        max_length = json.load(handle)["korclf"]["max_length"]
    return {"name": name, "accuracy": results["test_accuracy"], "macro_f1": results["test_macro_f1"],
            "parameters": count_parameters(config["output_dir"]), "train_samples": results["train_samples"],
            "train_samples_per_second": results["train_samples_per_second"],
            "train_runtime": results["train_runtime"], "max_length": max_length, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="scratch", choices=["scratch", "e5"])
    parser.add_argument("--train-rows", type=int, default=None, help="first N training rows (default: all 2,400)")
    parser.add_argument("--epochs", type=float, default=None, help="default: 10 (scratch), 1 (e5)")
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-4 (scratch), 1e-4 (e5)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 (scratch), 16 (e5)")
    parser.add_argument("--pooling", default=None, choices=["pooler", "first", "mean"],
                        help="default: pooler (scratch), mean (e5, which has no trained pooler)")
    parser.add_argument("--fusion", default="concat_mlp", choices=["logits_mlp", "concat_mlp"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--e5-dir", default=E5_CACHE, help="cache folder of the trimmed e5 checkpoint")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    scratch = args.backbone == "scratch"
    args.epochs = args.epochs if args.epochs is not None else (10.0 if scratch else 1.0)
    args.lr = args.lr if args.lr is not None else (5e-4 if scratch else 1e-4)
    args.batch_size = args.batch_size or (32 if scratch else 16)
    args.pooling = args.pooling or ("pooler" if scratch else "mean")

    if scratch:
        backbone = {"model_name_or_path": "scratch", "scratch_vocab_size": 8000, "scratch_hidden_size": 128,
                    "scratch_num_layers": 2, "scratch_num_heads": 2, "scratch_intermediate_size": 512}
        encoder = "scratch BERT (2 layers, hidden 128, WordPiece 8k trained on the training texts)"
    else:
        backbone = {"model_name_or_path": e5_path(args.e5_dir)}
        encoder = "multilingual-e5-small (12 layers, hidden 384, vocabulary trimmed to klue_nli)"

    with tempfile.TemporaryDirectory() as workdir:
        rows = [train(name, args, backbone, workdir) for name in args.models]

    train_rows = args.train_rows or 2400
    title = (f"KLUE-NLI test (600 rows), {encoder}; pooling {args.pooling}, fusion {args.fusion}; "
             f"{args.epochs:g} epochs over {rows[0]['train_samples']} of the first {train_rows} training rows "
             f"(10 % held out), lr {args.lr:g}, batch {args.batch_size}, seed {args.seed}")
    print_table(title, ["model", "accuracy", "macro-F1", "parameters", "train samples/s", "wall s"],
                [[r["name"], round(r["accuracy"], 4), round(r["macro_f1"], 4), f"{r['parameters']:,}",
                  round(r["train_samples_per_second"], 1), r["seconds"]] for r in rows])
    write_results(f"bench_multi_encoder_{args.backbone}", {"settings": vars(args), "title": title, "results": rows})


if __name__ == "__main__":
    main()
