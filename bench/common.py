"""Shared by the benchmark scripts: machine info, result tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import time

SHARED_DATA = os.environ.get("KORCLF_SHARED_DATA",
                             os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                                          "data"))
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info() -> dict:
    import torch

    from korclf.reporting import package_versions

    info = {"machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), **package_versions()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for j, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if j == 0:
            print("  ".join("-" * width for width in widths))


def write_results(name: str, results: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"machine": machine_info(), **results}, handle, ensure_ascii=False, indent=2)
    print(f"\nresults written to {path}")
    return path


def recipe_argv(options: dict, config_file: str | None = None) -> list[str]:
    """``[CONFIG] --key value ...`` for ``korclf.arguments.parse_config`` (lists and dicts as JSON; None left out)."""
    argv = [config_file] if config_file else []
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return argv


def run_recipe(options: dict, config_file: str | None = None) -> tuple[dict, float]:
    """The training recipe users run (``korclf.run.run``) on these options: (results, wall seconds)."""
    from korclf.arguments import parse_config
    from korclf.run import run

    start = time.perf_counter()
    results = run(*parse_config(recipe_argv(options, config_file)))
    return results, time.perf_counter() - start


def budget_options(workdir: str, name: str, args, eval_batch_size: int = 128, logging_steps: int = 50) -> dict:
    """Training options shared by the models a bench compares: same budget, length-grouped batches, test
    predictions, no checkpoints. ``args`` carries ``train_rows``, ``epochs``, ``lr``, ``batch_size``, ``seed``."""
    return {
        "max_train_samples": args.train_rows,
        "output_dir": os.path.join(workdir, name),
        "cache_dir": os.path.join(workdir, "cache"),
        "overwrite_output_dir": True,
        "do_train": True,
        "do_eval": False,
        "do_predict": True,
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": eval_batch_size,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "train_sampling_strategy": "group_by_length",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_steps": logging_steps,
        "report_to": "none",
        "disable_tqdm": True,
        "seed": args.seed,
    }
