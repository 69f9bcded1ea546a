#!/usr/bin/env python
"""Data-path benchmark on NSMC train (150,000 reviews).

    python bench/bench_pipeline.py [--rows N] [--steps N]

1. Tokenisation throughput (rows/s) of korclf's data path (``datasets.map`` with an explicit
   fingerprint, Arrow cache) on a cold cache and a warm cache, against the raw fast tokenizer's
   batch call over the same texts. One WordPiece tokenizer (16k, trained on the texts) for all.
   Goals: cold >= 0.8x raw; warm >= 20x cold.
2. Dynamic padding (korclf's collator) against padding to a fixed 128: padded tokens per real token,
   and training steps/s of a tiny BERT on the same batches. Goal: >= 2x real tokens/s.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def tokenization(rows: int, max_length: int) -> dict:
    import datasets

    from korclf.data.loading import load_file
    from korclf.data.processing import TextEncoder, cached_map
    from korclf.scratch import train_tokenizer

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        dataset = load_file(os.path.join(SHARED_DATA, "nsmc", "train.tsv"), cache_dir=cache)
        if rows < len(dataset):
            dataset = dataset.select(range(rows))
        texts = list(dataset["document"])
        tokenizer = train_tokenizer(texts, "wordpiece", 16000)
        encoder = TextEncoder(tokenizer, "document", max_length, None, "label", {"0": 0, "1": 1})

        start = time.perf_counter()
        tokenizer(texts, truncation=True, max_length=max_length)
        raw = time.perf_counter() - start

        timings = {}
        for name in ("cold", "warm"):
            start = time.perf_counter()
            out = cached_map(dataset, encoder, encoder.fingerprint_parts(), "bench", with_indices=True,
                             remove_columns=dataset.column_names)
            timings[name] = time.perf_counter() - start
        lengths = np.asarray(out["length"])
    n = len(texts)
    result = {"rows": n, "max_length": max_length, "raw_rows_per_s": n / raw, "cold_rows_per_s": n / timings["cold"],
              "warm_rows_per_s": n / timings["warm"], "cold_vs_raw": raw / timings["cold"],
              "warm_vs_cold": timings["cold"] / timings["warm"]}
    print_table("Tokenisation throughput (rows/s)", ["path", "rows/s", "ratio"], [
        ["raw fast tokenizer batch call", result["raw_rows_per_s"], 1.0],
        ["korclf data path, cold cache", result["cold_rows_per_s"], result["cold_vs_raw"]],
        ["korclf data path, warm cache", result["warm_rows_per_s"], result["warm_rows_per_s"] / result["raw_rows_per_s"]],
    ])
    print(f"cold = {result['cold_vs_raw']:.2f}x raw (goal >= 0.8); warm = {result['warm_vs_cold']:.1f}x cold (goal >= 20)")
    return result, out, tokenizer, lengths


def padding(tokenized, tokenizer, steps: int, batch_size: int, fixed: int) -> dict:
    from transformers import BertConfig, BertForSequenceClassification

    from korclf.data.processing import PaddingCollator

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=512, num_labels=2,
                                                     max_position_embeddings=fixed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    batches = [tokenized.select(rng.choice(len(tokenized), batch_size, replace=False)).to_list() for _ in range(steps)]
    rows = []
    result = {}
    for name, collator in (("dynamic", PaddingCollator(tokenizer.pad_token_id)),
                           ("fixed_128", PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of=fixed))):
        collated = [collator([dict(f) for f in batch]) for batch in batches]
        real = sum(int(b["attention_mask"].sum()) for b in collated)
        total = sum(b["input_ids"].numel() for b in collated)
        model.train()
        for b in collated[:2]:  # warm-up
            model(**b).loss.backward()
            optimizer.zero_grad()
        start = time.perf_counter()
        for b in collated:
            model(**b).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        elapsed = time.perf_counter() - start
        result[name] = {"padded_per_real_token": total / real, "steps_per_s": steps / elapsed,
                        "real_tokens_per_s": real / elapsed}
        rows.append([name, total / real, steps / elapsed, real / elapsed])
    result["tokens_per_s_ratio"] = result["dynamic"]["real_tokens_per_s"] / result["fixed_128"]["real_tokens_per_s"]
    print_table(f"Dynamic vs fixed padding (tiny BERT, batch {batch_size}, {steps} steps)",
                ["padding", "tokens/real token", "steps/s", "real tokens/s"], rows)
    print(f"dynamic padding = {result['tokens_per_s_ratio']:.2f}x real tokens/s of fixed 128 (goal >= 2)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tok_result, tokenized, tokenizer, _ = tokenization(args.rows, args.max_length)
    pad_result = padding(tokenized, tokenizer, args.steps, args.batch_size, args.max_length)
    write_results("bench_pipeline", {"config": vars(args), "tokenization": tok_result, "padding": pad_result})


if __name__ == "__main__":
    main()
