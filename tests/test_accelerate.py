"""The accelerate configurations load, and the CPU one launches a real (tiny) korclf run."""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "accelerate_configs", "*.yaml")))


def test_required_configs_present():
    names = {os.path.basename(path) for path in CONFIGS}
    assert {"cpu.yaml", "single_gpu_fp16.yaml", "single_gpu_bf16.yaml", "multi_gpu.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_with_accelerate(path):
    config = load_config_from_file(path)
    with open(path) as handle:
        raw = yaml.safe_load(handle)
    assert str(config.distributed_type).split(".")[-1] == str(raw["distributed_type"])
    assert config.mixed_precision == raw["mixed_precision"]


def test_cpu_config_launches_recipe(tmp_path):
    out = tmp_path / "out"
    config = {
        "model_name_or_path": "scratch", "scratch_vocab_size": 500, "scratch_hidden_size": 32,
        "scratch_num_layers": 1, "scratch_num_heads": 2, "scratch_intermediate_size": 64,
        "scratch_max_position": 64,
        "train_file": os.path.join(ROOT, "korclf/sample_data/train.tsv"),
        "test_file": os.path.join(ROOT, "korclf/sample_data/test.tsv"),
        "max_train_samples": 120, "max_predict_samples": 40, "max_length": 32,
        "output_dir": str(out), "do_train": True, "do_eval": True, "do_predict": True,
        "num_train_epochs": 1, "per_device_train_batch_size": 16, "save_strategy": "no",
        "report_to": "none", "disable_tqdm": True,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         os.path.join(ROOT, "accelerate_configs/cpu.yaml"), os.path.join(ROOT, "recipes/run.py"), str(path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_samples"] == 120 - 12  # validation_split_ratio 0.1 held out
    assert "eval_macro_f1" in results and "test_accuracy" in results
    assert (out / "predictions.tsv").read_text(encoding="utf-8").count("\n") == 41
