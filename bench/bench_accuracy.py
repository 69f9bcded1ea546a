#!/usr/bin/env python
"""NSMC test accuracy of multilingual-e5-small fine-tuned through the korclf recipe, beside the TF-IDF floor.

    python bench/bench_accuracy.py                                    # CPU budget (< 60 minutes on 2 cores)
    python bench/bench_accuracy.py --train-rows 300 --test-rows 500   # smoke: checks the path, measures speed
    python bench/bench_accuracy.py --train-rows 4000,8000,16000 --test-rows 5000   # learning curve
    python bench/bench_accuracy.py --device gpu                       # all 150,000 rows, 3 epochs, bf16
    python bench/bench_accuracy.py --check-reload                     # + korclf.predict / pipeline() of the folder

The model is trained by ``recipes/configs/nsmc_e5.yaml`` through ``korclf.run.run(*parse_config([config,
--overrides...]))``, the code path of ``korclf train``; the mode's settings are overrides of that config.
The encoder is multilingual-e5-small converted by ``../shared/tools/e5_to_hf.py`` with the vocabulary
trimmed to NSMC's train + test texts, built once into ``~/.cache/korclf/e5_small_nsmc`` and reused.

Training rows are the first N of train.tsv (NSMC is shuffled), 1 % of them held out by the recipe.
Accuracy and macro-F1 are the recipe run's own test metrics (``test_results.json``). The run reads a
copy of the test rows ordered by token length: korclf evaluates with a sequential sampler, and in the
file's random order every batch of 128 pads to ~3x its real tokens (measured: 17.8 against 53.8 rows
per CPU-second); the order changes no prediction (``--test-order file`` keeps the file's). The floor is character 1-3-gram TF-IDF + logistic
regression (``korclf.baseline``) on the same test rows, trained on the run's training rows
(``report_baseline``) and on all 150,000 (reference figure 87.37 %, korclf measured 87.58 %).

``--check-reload`` classifies the test rows again with ``korclf.predict`` on the saved folder (the
file's own order) and with ``pipeline("text-classification")`` on the first ``--pipeline-rows``, and
compares with the run. It is not part of the CPU budget (one more pass over the test rows).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, print_table, recipe_argv, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "recipes", "configs", "nsmc_e5.yaml")
DATA = os.path.join(SHARED_DATA, "nsmc")
E5_TOOL = os.environ.get("KORCLF_E5_TOOL", os.path.join(SHARED_DATA, "..", "tools", "e5_to_hf.py"))
E5_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "korclf", "e5_small_nsmc")
FLOOR_REFERENCE = 0.8737  # ../shared/data/README.md: character 1-3-gram TF-IDF + LR on this split
BUDGET_MINUTES = 60

# Each mode is a set of overrides of recipes/configs/nsmc_e5.yaml (see bench/README.md for the budget).
MODES = {
    "cpu": {
        "train_rows": 80000, "epochs": 1.0, "lr": 1e-4, "batch_size": 32,
        "overrides": {
            "use_cpu": True,
            "encoder_dropout": 0.0,  # one pass over fresh rows needs no dropout; 1.11x faster, +1.4 points at 8,000 rows
            "validation_split_ratio": 0.01,  # the run always holds some rows out; this keeps 99 % for training
            "do_eval": False, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False,
            "torch_compile": False, "dataloader_num_workers": 0,
        },
    },
    "gpu": {
        "train_rows": None, "epochs": 3.0, "lr": 5e-5, "batch_size": 32,
        "overrides": {
            "bf16": True, "tf32": True, "pad_to_multiple_of": 8, "dataloader_num_workers": 2,
            "per_device_eval_batch_size": 256,
            # the config's per-epoch validation and best-epoch checkpoint stay as written
        },
    },
}


# ----------------------------------------------------------------------------------------------- data --
def read_tsv(path: str) -> tuple[str, list[str], list[str], list[str]]:
    """Header line, raw lines, documents and labels of an NSMC file (tab-separated, no quoting)."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline()
        lines = [line if line.endswith("\n") else line + "\n" for line in handle]
    fields = [line.rstrip("\r\n").split("\t") for line in lines]
    bad = next((i for i, row in enumerate(fields) if len(row) != 3), None)
    if bad is not None:
        sys.exit(f"{path}: row {bad + 1} has {len(fields[bad])} fields, expected id, document, label")
    return header, lines, [row[1] for row in fields], [row[2] for row in fields]


def e5_path(folder: str) -> tuple[str, float]:
    """The trimmed e5 checkpoint (reused when ``folder`` holds one, else built from NSMC's texts) and build seconds."""
    if os.path.isfile(os.path.join(folder, "config.json")) and os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return folder, 0.0
    if os.path.exists(folder):
        sys.exit(f"{folder} exists but holds no complete checkpoint; remove it to rebuild")
    start = time.perf_counter()
    partial = f"{folder}.partial-{os.getpid()}"  # renamed into place only once complete
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        corpus = os.path.join(workdir, "nsmc_texts.txt")
        with open(corpus, "w", encoding="utf-8") as out:
            for split in ("train", "test"):
                out.writelines(f"{text}\n" for text in read_tsv(os.path.join(DATA, f"{split}.tsv"))[2])
        print(f"building the trimmed e5 checkpoint in {folder} (once)", flush=True)
        subprocess.run([sys.executable, E5_TOOL, partial, "--trim-vocab", corpus], check=True)
    os.replace(partial, folder)
    return folder, time.perf_counter() - start


def write_test_copy(path: str, rows: int, order: str, tokenizer_dir: str) -> str:
    """The first ``rows`` test rows, as they are (``file``) or ordered by e5 token length (``length``)."""
    header, lines, texts, _ = read_tsv(os.path.join(DATA, "test.tsv"))
    lines, texts = lines[:rows], texts[:rows]
    if order == "length":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        lines = [lines[i] for i in np.argsort(lengths, kind="stable")]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        handle.writelines(lines)
    return path


# ---------------------------------------------------------------------------------------------- runs --
@contextlib.contextmanager
def phase_clock(phases: dict):
    """Wall and process CPU seconds of every ``Trainer.train`` / ``Trainer.predict`` call, by name.

    Measurement only (the calls run unchanged): on a shared machine CPU seconds, not wall seconds,
    say what a phase costs, and the budget is planned from them.
    """
    from transformers import Trainer

    originals = {name: getattr(Trainer, name) for name in ("train", "predict")}

    def timed(name, method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            cpu, wall = os.times(), time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                end = os.times()
                key = name if name == "train" else kwargs.get("metric_key_prefix", "test")
                phases[key] = {"wall": time.perf_counter() - wall,
                               "cpu": (end.user - cpu.user) + (end.system - cpu.system)}
        return wrapper

    for name, method in originals.items():
        setattr(Trainer, name, timed(name, method))
    try:
        yield phases
    finally:
        for name, method in originals.items():
            setattr(Trainer, name, method)


def train(rows, args, mode: dict, encoder: str, test_file: str, output_dir: str, cache: str) -> dict:
    """One recipe run; returns its metrics, timings and the floor it trained on the same rows."""
    import torch

    from korclf.arguments import parse_config
    from korclf.run import run

    overrides = {
        "model_name_or_path": encoder,
        "train_file": os.path.join(DATA, "train.tsv"),
        "test_file": test_file,
        "output_dir": output_dir,
        "cache_dir": cache,
        "max_train_samples": rows,
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "per_device_train_batch_size": args.batch_size,
        "max_length": args.max_length,
        "disable_tqdm": True,
        "report_to": "none",
        "seed": args.seed,
        **mode["overrides"],
    }
    if args.device == "cpu":
        overrides["per_device_eval_batch_size"] = args.eval_batch_size
    argv = recipe_argv(overrides, CONFIG)
    print("\nrecipe: korclf.run.run(*parse_config(" + " ".join(os.path.relpath(a, ROOT) if a == CONFIG else a
                                                            for a in argv) + "))", flush=True)
    start, phases = time.perf_counter(), {}
    with phase_clock(phases):
        results = run(*parse_config(argv))
    seconds = time.perf_counter() - start
    with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as handle:
        max_length = json.load(handle)["korclf"]["max_length"]
    with open(os.path.join(output_dir, "baseline", "baseline_results.json"), encoding="utf-8") as handle:
        floor = json.load(handle)
    threads = torch.get_num_threads()
    return {
        "train_rows_requested": rows, "train_samples": results["train_samples"], "epochs": args.epochs,
        "accuracy": results["test_accuracy"], "macro_f1": results["test_macro_f1"],
        "test_samples": results["test_samples"], "max_length": max_length,
        "train_runtime": results["train_runtime"], "train_samples_per_second": results["train_samples_per_second"],
        "test_runtime": results.get("test_runtime"), "test_samples_per_second": results.get("test_samples_per_second"),
        "run_seconds": round(seconds, 1), "torch_threads": threads,
        # CPU seconds per phase: examples per CPU-second / threads is what an idle machine would give per second
        "train_cpu_seconds": round(phases["train"]["cpu"], 1), "test_cpu_seconds": round(phases["test"]["cpu"], 1),
        "train_examples_per_cpu_second": round(results["train_samples"] * args.epochs / phases["train"]["cpu"], 2),
        "test_rows_per_cpu_second": round(results["test_samples"] / phases["test"]["cpu"], 1),
        # share of the threads' time the process got while training: below 1, other jobs shared the cores
        "train_cpu_share": round(phases["train"]["cpu"] / phases["train"]["wall"] / threads, 3),
        "floor_accuracy": floor["results"]["test"]["test_accuracy"],
        "floor_macro_f1": floor["results"]["test"]["test_macro_f1"],
        "floor_train_samples": floor["train_samples"], "floor_train_seconds": floor["train_seconds"],
        "output_dir": output_dir,
    }


def full_floor(test_rows: int, output_dir: str, seed: int) -> dict:
    """The TF-IDF floor trained on all 150,000 training rows (the reference figure's setting)."""
    from korclf.baseline import run_baseline

    _, _, train_texts, train_labels = read_tsv(os.path.join(DATA, "train.tsv"))
    _, _, test_texts, test_labels = read_tsv(os.path.join(DATA, "test.tsv"))
    names = sorted(set(train_labels), key=int)
    index = {name: i for i, name in enumerate(names)}
    start = time.perf_counter()
    results = run_baseline(train_texts, [index[x] for x in train_labels],
                           {"test": (test_texts[:test_rows], [index[x] for x in test_labels[:test_rows]])},
                           names, output_dir, seed=seed)
    return {"train_samples": len(train_texts), "accuracy": results["test"]["test_accuracy"],
            "macro_f1": results["test"]["test_macro_f1"], "seconds": round(time.perf_counter() - start, 1)}


def check_reload(run: dict, test_file: str, pipeline_rows: int, device: str) -> dict:
    """``korclf.predict`` of the saved folder on the test file (its own order), and ``pipeline()`` on a sample."""
    import csv

    from korclf.predict import predict

    folder = run["output_dir"]
    with open(os.path.join(folder, "predictions.tsv"), encoding="utf-8", newline="") as handle:
        by_run = {row["id"]: row["label"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)}
    _, lines, texts, gold = read_tsv(test_file)
    ids = [line.split("\t", 1)[0] for line in lines]
    start = time.perf_counter()
    predictions = predict(folder, test_file, batch_size=128, device="cuda" if device == "gpu" else "cpu",
                          progress=False)
    seconds = time.perf_counter() - start
    predicted = [str(label) for label in predictions.labels]
    accuracy = float(np.mean([p == g for p, g in zip(predicted, gold)]))
    agree = sum(by_run[str(i)] == p for i, p in zip(predictions.ids, predicted))
    result = {"predict_accuracy": accuracy, "predict_seconds": round(seconds, 1),
              "predict_rows_per_second": round(len(gold) / seconds, 1),
              "predict_agrees_with_run": agree, "rows": len(gold),
              "accuracy_difference": accuracy - run["accuracy"]}
    if pipeline_rows:
        from transformers import pipeline

        import korclf.models  # noqa: F401  (registers korclf's model types with the Auto classes)

        classify = pipeline("text-classification", model=folder, device=0 if device == "gpu" else -1,
                            truncation=True, max_length=run["max_length"])
        sample = slice(0, min(pipeline_rows, len(texts)))
        labels = [out["label"] for out in classify(texts[sample], batch_size=64)]
        result["pipeline_rows"] = len(labels)
        result["pipeline_agrees_with_run"] = sum(by_run[i] == label for i, label in zip(ids[sample], labels))
    return result


# ---------------------------------------------------------------------------------------------- main --
def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=sorted(MODES))
    parser.add_argument("--train-rows", default=None,
                        help="first N training rows, or N1,N2,... for a learning curve; 'all' for 150,000 "
                             f"(default: {MODES['cpu']['train_rows']} on cpu, all on gpu)")
    parser.add_argument("--test-rows", type=int, default=None, help="first N test rows (default: all 50,000)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--eval-batch-size", type=int, default=128, help="cpu mode (gpu: 256)")
    parser.add_argument("--max-length", default="auto", help="'auto' (the config's percentile) or tokens")
    parser.add_argument("--test-order", default="length", choices=["length", "file"],
                        help="order of the test rows the run reads (predictions do not depend on it)")
    parser.add_argument("--e5-dir", default=E5_CACHE, help="cache folder of the trimmed e5 checkpoint")
    parser.add_argument("--output-dir", default=None,
                        help="kept model folder (default: outputs/bench_accuracy/<device>, git-ignored)")
    parser.add_argument("--check-reload", action="store_true")
    parser.add_argument("--pipeline-rows", type=int, default=1000, help="rows checked with pipeline()")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    mode = MODES[args.device]
    for key in ("epochs", "lr", "batch_size"):
        if getattr(args, key) is None:
            setattr(args, key, mode[key])
    if args.train_rows is None:
        args.rows = [mode["train_rows"]]
    else:
        args.rows = [None if part.strip() == "all" else int(part) for part in args.train_rows.split(",")]
    if args.max_length != "auto":
        args.max_length = int(args.max_length)
    args.output_dir = os.path.abspath(args.output_dir or os.path.join(ROOT, "outputs", "bench_accuracy", args.device))
    return args, mode


def main() -> None:
    args, mode = parse_args()
    if args.device == "gpu":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device gpu: no CUDA device is visible (torch.cuda.is_available() is False)")
    started, load_before = time.perf_counter(), os.getloadavg()
    encoder, build_seconds = e5_path(args.e5_dir)
    test_total = len(read_tsv(os.path.join(DATA, "test.tsv"))[1])
    test_rows = min(args.test_rows or test_total, test_total)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_accuracy_") as workdir:
        test_file = write_test_copy(os.path.join(workdir, "test.tsv"), test_rows, args.test_order, encoder)
        for rows in args.rows:
            output_dir = args.output_dir if len(args.rows) == 1 else os.path.join(args.output_dir, f"rows_{rows}")
            runs.append(train(rows, args, mode, encoder, test_file, output_dir, os.path.join(workdir, "cache")))
        floor = full_floor(test_rows, os.path.join(workdir, "floor_all_rows"), args.seed)
        budget_seconds = time.perf_counter() - started - build_seconds
        load_after = os.getloadavg()
        reload = None
        if args.check_reload:
            file_order = write_test_copy(os.path.join(workdir, "test_file_order.tsv"), test_rows, "file", encoder)
            reload = check_reload(runs[-1], file_order, args.pipeline_rows, args.device)

    header = ["model", "training examples", "epochs", "test accuracy", "test macro-F1", "wall s", "train examples/s"]
    rows = []
    for r in runs:
        rows.append(["e5-small, korclf recipe", r["train_samples"], r["epochs"], round(r["accuracy"], 4),
                     round(r["macro_f1"], 4), r["run_seconds"], round(r["train_samples_per_second"], 2)])
        rows.append(["TF-IDF floor, same rows", r["floor_train_samples"], "-", round(r["floor_accuracy"], 4),
                     round(r["floor_macro_f1"], 4), r["floor_train_seconds"], "-"])
    rows.append(["TF-IDF floor, all rows", floor["train_samples"], "-", round(floor["accuracy"], 4),
                 round(floor["macro_f1"], 4), floor["seconds"], "-"])
    print_table(f"NSMC test ({test_rows:,} rows), {args.device} mode, lr {args.lr:g}, batch {args.batch_size}, "
                f"test order: {args.test_order}", header, rows)
    last = runs[-1]
    print(f"\nfigures: the recipe run's test metrics ({os.path.join(last['output_dir'], 'test_results.json')})")
    for r in runs:
        print(f"  {r['train_samples']} rows: train {r['train_runtime']:.0f} s, test evaluation {r['test_runtime']:.0f} s "
              f"({r['test_samples_per_second']:.1f} rows/s, batch {args.eval_batch_size if args.device == 'cpu' else 256}), "
              f"max_length {r['max_length']}, torch threads {r['torch_threads']}; per CPU-second: train "
              f"{r['train_examples_per_cpu_second']:.2f} examples, test {r['test_rows_per_cpu_second']:.1f} rows "
              f"(CPU share while training {r['train_cpu_share']:.2f})")
    print(f"whole benchmark without the one-time e5 build: {budget_seconds / 60:.1f} min"
          + (f" (CPU budget {BUDGET_MINUTES} min)" if args.device == "cpu" else "")
          + (f"; e5 build {build_seconds:.0f} s" if build_seconds else "")
          + f"; load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end")
    print(f"model - floor (all rows): {100 * (last['accuracy'] - floor['accuracy']):+.2f} points; "
          f"reference floor {100 * FLOOR_REFERENCE:.2f} %")
    print(f"model folder kept: {last['output_dir']}")
    ok = True
    if reload:
        ok = abs(reload["accuracy_difference"]) <= 1.0 / reload["rows"] + 1e-12  # at most one borderline row
        print(f"\ncheck-reload: korclf.predict accuracy {reload['predict_accuracy']:.4f} vs run {last['accuracy']:.4f} "
              f"({reload['predict_agrees_with_run']}/{reload['rows']} labels as in predictions.tsv, "
              f"{reload['predict_seconds']:.0f} s, {reload['predict_rows_per_second']:.1f} rows/s)"
              + (f"; pipeline() agrees on {reload['pipeline_agrees_with_run']}/{reload['pipeline_rows']} rows"
                 if "pipeline_rows" in reload else "") + (" - OK" if ok else " - MISMATCH"))
    write_results(f"bench_accuracy_{args.device}", {
        "settings": {key: value for key, value in vars(args).items()}, "overrides": mode["overrides"],
        "test_rows": test_rows, "runs": runs, "floor_all_rows": floor, "check_reload": reload,
        "minutes_without_e5_build": round(budget_seconds / 60, 2), "e5_build_seconds": round(build_seconds, 1),
        "load_average_start_end": [load_before[0], load_after[0]],
    })
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
