"""bench/bench_gpu.py runs end to end on a CPU (--smoke) and its figures follow from its own measurements."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_gpu  # noqa: E402


@pytest.mark.timeout(120)
def test_smoke_run_writes_table_and_json(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               CUDA_VISIBLE_DEVICES="")  # the CPU path, even where a GPU is present
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--smoke", "--results-dir",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=110, cwd=str(ROOT))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "samples/s" in done.stdout and "korclf focal / stock CE" in done.stdout
    results = json.loads((tmp_path / "bench_gpu_smoke.json").read_text(encoding="utf-8"))
    assert results["device"] == "cpu" and results["memory"] == "process_peak_rss"
    rows = {(row["dtype"], row["trainer"]): row for row in results["rows"]}
    assert set(rows) == {(d, t) for d in ("fp32", "fp16", "bf16") for t in ("stock", "korclf")}
    assert rows["fp32", "korclf"]["loss"] == "focal" and rows["fp32", "stock"]["loss"] == "ce"
    for dtype in ("fp16", "bf16"):  # no mixed precision on the CPU: n/a rows without figures
        assert "samples_per_s" not in rows[dtype, "stock"] and "samples_per_s" not in rows[dtype, "korclf"]
    config = results["config"]
    # BertConfig(vocab 1000, hidden 32, 2 layers, ffn 64, 64 positions) + 4-label head, counted by hand:
    # embeddings 1000*32 + 64*32 + 2*32 + 2*32; per layer 4*(32*32+32) + (32*64+64) + (64*32+32) + 2*2*32;
    # pooler 32*32+32; classifier 32*4+4
    params = 34176 + 2 * 8544 + 1056 + 132
    for trainer in ("stock", "korclf"):
        row = rows["fp32", trainer]
        assert row["params"] == params
        assert row["samples_per_s"] == pytest.approx(config["steps"] * config["batch_size"] / row["seconds"])
        assert row["model_tflops"] == pytest.approx(6 * params * row["samples_per_s"] * config["seq_len"] / 1e12)
        assert row["mfu"] is None and row["peak_memory_mib"] > 0
    assert results["korclf_vs_stock"]["fp32"] == pytest.approx(
        rows["fp32", "korclf"]["samples_per_s"] / rows["fp32", "stock"]["samples_per_s"])


@pytest.mark.parametrize("name,dtype,tflops", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 PCIe", "fp16", 756.0), ("NVIDIA H200", "fp32", 67.0),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0), ("NVIDIA A10", "fp16", 125.0), ("NVIDIA L4", "bf16", 121.0),
    ("Tesla T4", "bf16", None), ("Tesla V100-SXM2-16GB", "fp16", 125.0),
    ("NVIDIA L40S", "bf16", None), ("NVIDIA A10G", "bf16", None),  # not in the table: n/a, not a wrong match
])
def test_peak_flops_table(name, dtype, tflops):
    peak = bench_gpu.peak_flops(name, dtype)
    assert (peak / 1e12 if peak else None) == (pytest.approx(tflops) if tflops else None)
