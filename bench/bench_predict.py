#!/usr/bin/env python
"""Inference speed: ``korclf.predict`` against a plain ``transformers`` text-classification pipeline.

    python bench/bench_predict.py [--rows N] [--batch-size N] [--size small|base] [--threads N]

Both classify the same NSMC test reviews (``document``; the first ``--rows``, 0 = all 50,000) with
one fixed model folder, the same batch size and truncation to 128 tokens, side by side in one
process. korclf sorts rows by token length before batching and runs under ``torch.inference_mode``;
the pipeline batches in input order. Before any timing the two must agree (labels >= 99.9 %,
probabilities within 1e-4): a speed comparison of different outputs would mean nothing.

The model folder is built once (in a temporary folder, or ``--model-dir`` to keep it): a WordPiece
tokenizer (16k) trained on the NSMC train texts by ``korclf.scratch.train_tokenizer`` and a randomly
initialised BERT classifier (seed 0, 2 labels); weights do not change the speed. ``--size small``:
hidden 256, 4 layers, 4 heads, FFN 1024, 512 positions; ``--size base``: BERT-base dimensions
(768, 12, 12, 3072). Goal: korclf >= 1.5x the pipeline's sentences/s.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}
LABELS = ["0", "1"]  # NSMC: negative, positive
TEXT_COLUMN = "document"


def read_column(path: str, column: str, rows: int = 0) -> list[str]:
    """One column of a tab-separated file (no quoting, as korclf reads .tsv), the first ``rows`` if > 0."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        index = header.index(column)
        texts = []
        for line in handle:
            texts.append(line.rstrip("\n").split("\t")[index])
            if rows and len(texts) == rows:
                break
    return texts


def build_model(folder: str, size: str, max_length: int) -> None:
    """Tokenizer trained on NSMC train + a seeded random BERT classifier, saved with ``config.korclf``."""
    from transformers import BertConfig, BertForSequenceClassification

    from korclf import __version__
    from korclf.scratch import train_tokenizer

    start = time.perf_counter()
    tokenizer = train_tokenizer(read_column(os.path.join(SHARED_DATA, "nsmc", "train.tsv"), TEXT_COLUMN),
                                "wordpiece", 16000)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                        label2id={name: i for i, name in enumerate(LABELS)}, **SIZES[size])
    # what korclf.run.korclf_settings stores for a plain one-text sequence classifier
    config.korclf = {"version": __version__, "model_kind": "sequence", "normalization": None,
                     "text_column": TEXT_COLUMN, "text_pair_column": None, "text_columns": None,
                     "label_column": "label", "id_column": "id", "max_length": max_length, "entity_format": None,
                     "entity_marker": None, "subject_column": None, "object_column": None,
                     "entity_include_markers": False, "entity_overflow": "error"}
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    print(f"built model folder {folder} ({size}: {params / 1e6:.1f}M parameters, vocabulary {len(tokenizer)}) "
          f"in {time.perf_counter() - start:.1f}s")


def check_model(folder: str, size: str, max_length: int) -> None:
    """A kept ``--model-dir`` must be the model asked for, or the figures would be labelled wrongly."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    found = {key: getattr(config, key) for key in SIZES[size]}
    settings = getattr(config, "korclf", None) or {}
    if found != SIZES[size] or settings.get("max_length") != max_length:
        sys.exit(f"{folder} holds a model with {found}, max_length {settings.get('max_length')}; "
                 f"--size {size} --max-length {max_length} needs {SIZES[size]}: use another --model-dir")


def padding_ratio(lengths: np.ndarray, batch_size: int, sort: bool) -> float:
    """Tokens in padded batches per real token; batches of ``batch_size`` rows, length-sorted or in input order."""
    if sort:
        lengths = np.sort(lengths, kind="stable")
    padded = sum(len(chunk) * int(chunk.max()) for chunk in np.array_split(lengths, range(batch_size, len(lengths),
                                                                                           batch_size)))
    return padded / int(lengths.sum())


def pipeline_probabilities(outputs: list, label2id: dict) -> np.ndarray:
    """``top_k=None`` pipeline outputs (all labels, sorted by score) as a (rows, labels) array in label order."""
    out = np.zeros((len(outputs), len(label2id)))
    for row, scores in enumerate(outputs):
        for entry in scores:
            out[row, label2id[entry["label"]]] = entry["score"]
    return out


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def compare(folder: str, texts: list[str], batch_size: int, max_length: int, repeats: int, warmup: int) -> dict:
    import datasets
    from transformers import AutoTokenizer, pipeline

    import korclf

    datasets.disable_progress_bars()
    load_seconds, classifier = timed(lambda: pipeline("text-classification", model=folder, tokenizer=folder,
                                                      device=-1, batch_size=batch_size, truncation=True,
                                                      max_length=max_length, top_k=None))
    label2id = classifier.model.config.label2id

    def run_korclf(rows):
        return korclf.predict(folder, rows, batch_size=batch_size, progress=False).probabilities

    def run_pipeline(rows):
        return pipeline_probabilities(classifier(rows), label2id)

    for function in (run_korclf, run_pipeline):  # warm-up: first-call allocations, lazy imports
        function(texts[:warmup])
    seconds = {"korclf": [], "pipeline": []}
    outputs = {}
    for _ in range(repeats):  # interleaved, so a burst of load on the shared machine hits both
        for name, function in (("korclf", run_korclf), ("pipeline", run_pipeline)):
            elapsed, outputs[name] = timed(function, texts)
            seconds[name].append(elapsed)

    korclf_probs, pipeline_probs = outputs["korclf"], outputs["pipeline"]
    label_agreement = float(np.mean(korclf_probs.argmax(1) == pipeline_probs.argmax(1)))
    max_difference = float(np.abs(korclf_probs - pipeline_probs).max())
    lengths = np.array([len(ids) for ids in AutoTokenizer.from_pretrained(folder)(
        texts, truncation=True, max_length=max_length)["input_ids"]])
    result = {"rows": len(texts), "pipeline_load_seconds": load_seconds, "label_agreement": label_agreement,
              "max_probability_difference": max_difference, "mean_tokens": float(lengths.mean())}
    for name, sort in (("korclf", True), ("pipeline", False)):
        best = min(seconds[name])
        result[name] = {"seconds": seconds[name], "best_seconds": best, "sentences_per_s": len(texts) / best,
                        "padded_per_real_token": padding_ratio(lengths, batch_size, sort)}
    result["speedup"] = result["korclf"]["sentences_per_s"] / result["pipeline"]["sentences_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="First N test rows; 0 = all 50,000.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both.")
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs of each; the best counts.")
    parser.add_argument("--warmup", type=int, default=256, help="Rows classified by each before timing.")
    parser.add_argument("--model-dir", default=None, help="Keep the model folder here (built if missing).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    texts = read_column(os.path.join(SHARED_DATA, "nsmc", "test.tsv"), TEXT_COLUMN, args.rows)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model_dir or os.path.join(scratch, "model")
        if not os.path.isfile(os.path.join(folder, "config.json")):
            build_model(folder, args.size, args.max_length)
        check_model(folder, args.size, args.max_length)
        result = compare(folder, texts, args.batch_size, args.max_length, args.repeats, args.warmup)

    agree = result["label_agreement"] >= 0.999 and result["max_probability_difference"] <= 1e-4
    print_table(f"Inference on NSMC test, {result['rows']} rows, BERT {args.size}, batch {args.batch_size}, "
                f"max_length {args.max_length}, {args.threads} threads (best of {args.repeats})",
                ["path", "sentences/s", "best s", "padded/real tokens"],
                [[name, result[name]["sentences_per_s"], result[name]["best_seconds"],
                  result[name]["padded_per_real_token"]] for name in ("korclf", "pipeline")])
    print(f"outputs: labels agree on {100 * result['label_agreement']:.3f} % of rows, largest probability "
          f"difference {result['max_probability_difference']:.2e} ({'OK' if agree else 'MISMATCH'})")
    print(f"korclf predict = {result['speedup']:.2f}x the pipeline's sentences/s (goal >= 1.5); "
          f"mean {result['mean_tokens']:.1f} tokens per row; pipeline load {result['pipeline_load_seconds']:.2f}s "
          "(not timed; korclf.predict's timings include loading the folder)")
    write_results(f"bench_predict_{args.size}_{result['rows']}", {"config": vars(args), "outputs_agree": agree,
                                                                 **result})
    if not agree:
        sys.exit("korclf predict and the pipeline disagree: the timings compare different outputs")


if __name__ == "__main__":
    main()
