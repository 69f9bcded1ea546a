#!/usr/bin/env python
"""Imbalance remedies on NSMC-rating (10 star ratings, long-tailed: 43 % are 10, 2 % are 2).

    python bench/bench_imbalance.py [--rows N] [--epochs N] [--test-rows N]

One fixed backbone and budget for every setting, so that only the remedy changes:

- korclf's from-scratch model (``model_name_or_path: scratch``: WordPiece 8k trained on the
  training texts, BERT with hidden 128, 2 layers, 2 heads), ``max_length`` 96;
- the first ``--rows`` training rows (``max_train_samples``, default 20,000), of which 10 % are held
  out (stratified) for validation; ``--epochs`` epochs (default 3), batch 64, learning rate 5e-4,
  linear decay with 6 % warm-up, seed 42; no checkpoints, no evaluation during training;
- scored on the test split (20,000 rows of other movies; ``--test-rows`` for fewer).

Settings, each a config override of one ``korclf.run.run(*parse_config(argv))`` call:
CE; CE with ``class_weights: balanced``; ``loss: focal`` with ``focal_gamma: 2``; CE with
``label_smoothing: 0.1``; ``resample: enn`` + CE (TF-IDF features, ``sampling_strategy: majority``:
with ENN's default, classes vanish); ``n_folds: 3`` (k-fold
ensemble, mean of probabilities; every training row is in one of the folds, none held out). The floor, TF-IDF + logistic regression (``korclf.baseline.run_baseline``),
is trained on the same training rows, plain and with ``class_weight="balanced"``.

The table gives test accuracy, test macro-F1, the training rows the model saw and wall seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, print_table, write_results  # noqa: E402

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = os.path.join(SHARED_DATA, "nsmc_rating")

# setting name -> config overrides (on top of base_config)
SETTINGS = {
    "ce": {},
    "ce_balanced_weights": {"class_weights": "balanced"},
    "focal_gamma2": {"loss": "focal", "focal_gamma": 2},
    "label_smoothing_0.1": {"label_smoothing": 0.1},
    # ENN's default (clean every class but the smallest) empties classes 2, 4 and 5 of NSMC-rating
    # (18,000 rows, TF-IDF): their neighbourhoods are mostly other ratings. Clean the majority only.
    "enn_ce": {"resample": "enn", "resample_kwargs": {"sampling_strategy": "majority"}},
    "kfold3_mean": {"n_folds": 3, "fold_ensemble": "mean"},
}
# options that korclf.run must read for the setting to mean anything


def base_config(work: str, rows: int, epochs: float, test_rows: int | None) -> dict:
    config = {
        "model_name_or_path": "scratch",
        "train_file": os.path.join(DATA, "train.tsv"),
        "test_file": os.path.join(DATA, "test.tsv"),
        "text_column": "document",
        "label_column": "rating",
        "id_column": "id",
        "max_train_samples": rows,
        "max_length": 96,
        "cache_dir": os.path.join(work, "hf_cache"),
        "do_train": True,
        "do_eval": True,
        "do_predict": True,
        "num_train_epochs": epochs,
        "per_device_train_batch_size": 64,
        "per_device_eval_batch_size": 256,
        "learning_rate": 5.0e-4,
        "warmup_steps": 0.06,  # a ratio of the total steps
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_steps": 50,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
        "overwrite_output_dir": True,
        "seed": 42,
    }
    if test_rows is not None:
        config["max_predict_samples"] = test_rows
    return config


def run_setting(config_path: str, work: str, name: str, overrides: dict) -> dict:
    from korclf.arguments import parse_config
    from korclf.run import run

    argv = [config_path, "--output_dir", os.path.join(work, name)]
    for key, value in overrides.items():
        argv += [f"--{key}", yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()]
    start = time.perf_counter()
    results = run(*parse_config(argv))
    seconds = time.perf_counter() - start
    return {"setting": name, "overrides": overrides, "test_accuracy": results.get("test_accuracy"),
            "test_macro_f1": results.get("test_macro_f1"), "train_rows": results.get("train_samples"),
            "seconds": seconds}


def run_floor(config_path: str, work: str) -> list[dict]:
    """TF-IDF + logistic regression on the same prepared training rows, plain and class-balanced."""
    from korclf.arguments import parse_config
    from korclf.baseline import run_baseline
    from korclf.data.prepare import prepare_splits

    model_args, data_args, training_args = parse_config([config_path, "--output_dir", os.path.join(work, "floor")])
    prepared = prepare_splits(model_args, data_args, training_args.seed)
    train_texts = prepared.splits["train"][data_args.text_column]
    train_labels = prepared.labels("train", data_args.label_column)
    test = (prepared.splits["test"][data_args.text_column], prepared.labels("test", data_args.label_column))
    rows = []
    for name, class_weight in (("tfidf_lr", None), ("tfidf_lr_balanced", "balanced")):
        start = time.perf_counter()
        results = run_baseline(train_texts, train_labels, {"test": test}, prepared.label_names,
                               os.path.join(work, name), class_weight=class_weight, seed=training_args.seed)
        rows.append({"setting": name, "overrides": {"class_weight": class_weight},
                     "test_accuracy": results["test"]["test_accuracy"],
                     "test_macro_f1": results["test"]["test_macro_f1"], "train_rows": len(train_labels),
                     "seconds": time.perf_counter() - start})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="training rows read (max_train_samples)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--test-rows", type=int, default=None, help="first N test rows (default: all 20,000)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--results-name", default="bench_imbalance", help="bench/results/<name>.json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as work:
        config = base_config(work, args.rows, args.epochs, args.test_rows)
        config_path = os.path.join(work, "config.yaml")
        with open(config_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, allow_unicode=True, sort_keys=False)
        rows += run_floor(config_path, work)
        for name in args.settings:
            rows.append(run_setting(config_path, work, name, SETTINGS[name]))
    budget = {key: value for key, value in config.items() if key not in ("cache_dir", "train_file", "test_file")}

    def fmt(value):
        return "-" if value is None else value

    print_table(f"NSMC-rating, first {args.rows} training rows, {args.epochs:g} epoch(s), test split",
                ["setting", "accuracy", "macro-F1", "train rows", "seconds"],
                [[r["setting"], fmt(r["test_accuracy"]), fmt(r["test_macro_f1"]), fmt(r["train_rows"]),
                  round(r["seconds"], 1)] for r in rows])
    write_results(args.results_name, {"config": vars(args), "budget": budget, "results": rows})


if __name__ == "__main__":
    main()
