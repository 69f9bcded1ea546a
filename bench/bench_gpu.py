#!/usr/bin/env python
"""Training throughput, peak memory and model FLOPs utilisation of a BERT-base classifier.

    python bench/bench_gpu.py [--steps N] [--batch-size B] [--seq-len L] [--dtypes fp32,fp16,bf16]
    python bench/bench_gpu.py --smoke        # tiny model, a few steps: runs on a CPU in seconds (CI)

The model is built from ``BertConfig()`` (BERT-base sizes: 12 layers, hidden 768; no download) with
a 4-label head, and trained on the same random token ids (every token real, fixed length) by two
trainers: the stock ``transformers.Trainer`` with the model's cross-entropy, and korclf's
``KorclfTrainer`` with the focal loss (``korclf.losses.build_loss``). Each precision runs as the
Trainer does it: fp32, or fp16 / bf16 mixed precision (autocast, fp32 weights).

* samples/s: over the steps after ``--warmup`` (the GPU is synchronised at both ends).
* peak memory: ``torch.cuda.max_memory_allocated`` of that run; on a CPU, the process's peak RSS
  (a high-water mark over the whole process, so only the first row is the run's own).
* MFU: 6 x parameters x tokens/s / the device's dense peak FLOP/s for that precision, from the
  table below (n/a on a CPU or an unknown GPU). The 6·N rule counts the weight matmuls of forward
  and backward and leaves out attention scores, so MFU is slightly understated at long sequences.

fp16 / bf16 rows are n/a on a CPU (and bf16 on GPUs without it). Goal: korclf's trainer within 5 %
of the stock one's samples/s (the focal loss is a few element-wise ops on a (batch, labels) tensor).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NUM_LABELS = 4
# Dense (no sparsity) peak TFLOP/s from NVIDIA's data sheets: (pattern, fp32, tf32, fp16/bf16 tensor core).
# bf16 is None where the GPU has no bf16 tensor cores. Checked in order: "A100" before r"\bA10\b".
PEAK_TFLOPS = [
    (r"H200", 67.0, 494.7, 989.4),
    (r"H100.*PCIe", 51.2, 378.0, 756.0),
    (r"H100", 67.0, 494.7, 989.4),  # SXM
    (r"A100", 19.5, 156.0, 312.0),
    (r"\bA10\b", 31.2, 62.5, 125.0),
    (r"\bL4\b", 30.3, 60.0, 121.0),
    (r"V100", 15.7, None, 125.0),
    (r"\bT4\b", 8.1, None, 65.0),
]
NO_BF16 = (r"V100", r"\bT4\b")


def peak_flops(device_name: str, dtype: str):
    """Peak FLOP/s of the GPU for ``dtype``, or None when unknown.

    fp32 counts TF32 tensor cores only when PyTorch is allowed to use them for matmuls.
    """
    import torch

    for pattern, fp32, tf32, half in PEAK_TFLOPS:
        if re.search(pattern, device_name):
            if dtype == "fp32":
                tera = tf32 if tf32 and torch.backends.cuda.matmul.allow_tf32 else fp32
            elif dtype == "bf16" and pattern in NO_BF16:
                tera = None
            else:
                tera = half
            return tera * 1e12 if tera else None
    return None


def model_config(smoke: bool):
    from transformers import BertConfig

    if smoke:
        return BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64, num_labels=NUM_LABELS)
    return BertConfig(num_labels=NUM_LABELS)  # BERT-base: 12 x 768, vocab 30522


class RandomTokens:
    """``rows`` fixed-length sequences of random token ids with random labels (seeded)."""

    def __init__(self, rows: int, seq_len: int, vocab_size: int, seed: int = 0):
        import torch

        generator = torch.Generator().manual_seed(seed)
        # ids 1.. so that no token is the padding id 0
        self.input_ids = torch.randint(1, vocab_size, (rows, seq_len), generator=generator)
        self.labels = torch.randint(0, NUM_LABELS, (rows,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "attention_mask": self.input_ids[i].new_ones(self.input_ids.shape[1]),
                "labels": self.labels[i]}


def step_timer(warmup: int, synchronize):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of the steps after ``warmup``, with the device synchronised at both ends."""

        start = end = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                synchronize()
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == args.max_steps:
                synchronize()
                self.end = time.perf_counter()

    return StepTimer()


def train_once(trainer_name: str, dtype: str, args, cuda: bool, output_dir: str) -> dict:
    """One timed training run; returns samples/s, peak memory and parameter count."""
    import torch
    from transformers import BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments

    from korclf.losses import build_loss
    from korclf.trainer import KorclfTrainer

    torch.manual_seed(0)
    config = model_config(args.smoke)
    model = BertForSequenceClassification(config)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = args.warmup + args.steps
    data = RandomTokens(steps * args.batch_size, args.seq_len, config.vocab_size)
    training = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=args.batch_size, max_steps=steps, learning_rate=2e-5,
        fp16=dtype == "fp16", bf16=dtype == "bf16", use_cpu=not cuda, save_strategy="no", report_to="none",
        logging_strategy="no", disable_tqdm=True, dataloader_pin_memory=cuda, seed=0,
    )
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    timer = step_timer(args.warmup, synchronize)
    common_kwargs = {"model": model, "args": training, "train_dataset": data, "callbacks": [timer]}
    if trainer_name == "korclf":
        trainer = KorclfTrainer(**common_kwargs, loss_fn=build_loss("focal", NUM_LABELS, focal_gamma=2.0))
    else:
        trainer = Trainer(**common_kwargs)
    trainer.remove_callback(PrinterCallback)  # the per-run log dict; the table says it all
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    seconds = timer.end - timer.start
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    del trainer, model
    gc.collect()
    return {"samples_per_s": args.steps * args.batch_size / seconds, "seconds": seconds, "peak_memory_mib": peak,
            "params": params}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes (CPU-friendly, for CI)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30; smoke 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5; smoke 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32; smoke 4")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sample (default 128; smoke 16)")
    parser.add_argument("--dtypes", default="fp32,fp16,bf16")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default bench/results)")
    args = parser.parse_args(argv)
    for name, full, smoke in (("steps", 30, 3), ("warmup", 5, 1), ("batch_size", 32, 4), ("seq_len", 128, 16)):
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.results_dir:
        common.RESULTS_DIR = args.results_dir

    import logging

    import torch
    import transformers

    logging.basicConfig(level=logging.WARNING)
    transformers.utils.logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    rows, table = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes.split(","):
            supported = cuda or dtype == "fp32"
            if dtype == "bf16" and cuda and not torch.cuda.is_bf16_supported():
                supported = False
            peak = peak_flops(device, dtype) if cuda else None
            for trainer_name, loss in (("stock", "ce"), ("korclf", "focal")):
                row = {"dtype": dtype, "trainer": trainer_name, "loss": loss}
                if supported:
                    row.update(train_once(trainer_name, dtype, args, cuda, tmp))
                    flops = 6 * row["params"] * row["samples_per_s"] * args.seq_len
                    row["model_tflops"] = flops / 1e12
                    row["mfu"] = flops / peak if peak else None
                rows.append(row)
                table.append([dtype, trainer_name, loss] + [
                    row[key] if row.get(key) is not None else "n/a"
                    for key in ("samples_per_s", "peak_memory_mib", "model_tflops", "mfu")])
    ratios = {}
    for dtype in args.dtypes.split(","):
        stock, ours = (next(r for r in rows if r["dtype"] == dtype and r["trainer"] == name)
                       for name in ("stock", "korclf"))
        if "samples_per_s" in stock:
            ratios[dtype] = ours["samples_per_s"] / stock["samples_per_s"]
    size = "tiny smoke model" if args.smoke else "BERT-base"
    memory = "peak MiB" if cuda else "peak RSS MiB"
    print_table(f"Training throughput, {size}, batch {args.batch_size} x {args.seq_len} tokens, {args.steps} timed "
                f"steps on {device}", ["precision", "trainer", "loss", "samples/s", memory, "model TFLOP/s", "MFU"],
                table)
    for dtype, ratio in ratios.items():
        print(f"{dtype}: korclf focal / stock CE samples/s = {ratio:.3f} (goal >= 0.95)")
    peaks = {dtype: (peak_flops(device, dtype) or 0) / 1e12 or None for dtype in args.dtypes.split(",")}
    results = {"config": vars(args), "device": device, "memory": "cuda_max_allocated" if cuda else "process_peak_rss",
               "peak_tflops": peaks if cuda else None, "rows": rows, "korclf_vs_stock": ratios}
    write_results("bench_gpu_smoke" if args.smoke else "bench_gpu", results)
    return results

if __name__ == "__main__":
    main()
