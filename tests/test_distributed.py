"""Multi-process configurations: the shipped accelerate configs are launchable, and a two-process CPU run
(gloo) gives the single-process result and writes one output folder."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin, patch_environment
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
from helpers import (
    LABELS,
    SAMPLE_TEST,
    logged_losses,
    read_json,
    read_predictions,
    read_tsv,
    run_config,
    sample_rows,
    tiny_config,
    tiny_tokenizer,
    write_table,
)
from safetensors.torch import load_file
from transformers import AutoModel

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "accelerate_configs"
NESTED = {"deepspeed_config", "fsdp_config"}


# ------------------------------------------------------------------------------------ configurations


def launcher_view(name: str):
    """What ``accelerate launch --config_file accelerate_configs/NAME.yaml`` makes of the file.

    The launcher's own parser and validation, then the environment it would give the training
    processes (``--main_process_port 0``: a free port, so the check never collides with a real run).
    """
    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(CONFIGS / name), "--main_process_port", "0",
                              str(ROOT / "recipes" / "run.py"), "config.yaml"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    launched = {key: value for key, value in env.items() if os.environ.get(key) != value}
    return args, defaults, launched


@pytest.mark.parametrize("name", ["multi_node.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"])
def test_new_config_parses_and_every_nested_key_is_a_launch_option(name):
    config = load_config_from_file(str(CONFIGS / name))
    raw = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    assert str(config.distributed_type).split(".")[-1] == raw["distributed_type"]
    assert config.mixed_precision == raw["mixed_precision"] == "bf16"
    # the launcher copies deepspeed_config / fsdp_config entries onto its arguments without checking
    # them: a misspelt key would be ignored in silence, so each must be one of its options
    options = {action.dest for action in launch_command_parser()._actions}
    for section in NESTED & set(raw):
        assert raw[section], section
        for key in raw[section]:
            assert key in options, f"{name}: {section}.{key} is not an accelerate launch option"


def test_deepspeed_configs_give_zero_2_and_3():
    for name, stage in (("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)):
        args, _, env = launcher_view(name)
        assert args.use_deepspeed and not args.use_fsdp and args.num_processes == 2
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
        with patch_environment(**env):  # the plugin the Trainer's Accelerator builds from that environment
            plugin = DeepSpeedPlugin()
        ds = plugin.deepspeed_config
        assert ds["zero_optimization"]["stage"] == stage
        # batch size, accumulation and clipping are left to the korclf config (TrainingArguments)
        assert ds["train_micro_batch_size_per_gpu"] == ds["gradient_accumulation_steps"] == "auto"
        assert ds["gradient_clipping"] == "auto"
        assert ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
        # stage 3 must gather the weights on save, or the output folder holds no reloadable model
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)
        assert plugin.zero3_init_flag is (stage == 3)


def test_fsdp_config_gives_fsdp2_with_full_state_dict():
    args, _, env = launcher_view("fsdp.yaml")
    assert args.use_fsdp and not args.use_deepspeed
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    with patch_environment(**env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.reshard_after_forward is True and plugin.cpu_ram_efficient_loading is False


def test_multi_node_template_marks_its_fields_and_launches_two_nodes():
    text = (CONFIGS / "multi_node.yaml").read_text(encoding="utf-8")
    for key in ("num_machines", "num_processes", "machine_rank", "main_process_ip", "main_process_port"):
        line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
        assert "FILL IN" in line, line
    args, _, env = launcher_view("multi_node.yaml")
    assert args.multi_gpu and args.num_machines == 2 and args.num_processes == 16
    # torchrun arguments of node 0: 8 processes on each of 2 nodes, rendezvous at the main machine
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 0)
    endpoint = getattr(args, "rdzv_endpoint", None) or f"{args.master_addr}:{args.master_port}"
    assert endpoint.startswith("10.0.0.1:")
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


# ------------------------------------------------------------------------------ two CPU processes

WORLD = 2
GLOBAL_BATCH = 16
TRAIN_ROWS, EVAL_ROWS, TEST_ROWS = 96, 48, 40  # 96 = 6 full global batches: no uneven last batch
STEPS = 12


def no_dropout_checkpoint(folder: Path) -> str:
    """A tiny BERT (hidden 32, 2 layers) with dropout off, saved as a "pretrained" folder.

    Each process draws its own dropout masks, so with dropout the two runs would differ by noise;
    without it they differ only by floating-point summation order, and a tight tolerance holds.
    """
    tokenizer = tiny_tokenizer()
    config = tiny_config("bert", tokenizer)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run twice, one process with batch 16 and two gloo processes with batch 8 each."""
    tmp = tmp_path_factory.mktemp("distributed")
    rows = sample_rows("train")
    options = dict(
        model_name_or_path=no_dropout_checkpoint(tmp / "model"), classifier_dropout=0.0,
        train_file=write_table(tmp / "train.tsv", rows[:TRAIN_ROWS]),
        validation_file=write_table(tmp / "validation.tsv", rows[TRAIN_ROWS:TRAIN_ROWS + EVAL_ROWS]),
        test_file=SAMPLE_TEST, max_predict_samples=TEST_ROWS, max_train_samples=None, do_predict=True,
        max_steps=STEPS, learning_rate=5.0e-3, cache_dir=str(tmp / "hf_cache"),
        # 48 validation rows = 3 full batches of 8 per process. An incomplete last batch is topped up
        # with rows repeated from the start so that every process gets a full one; the Trainer drops
        # the repeats from the predictions, but its eval_loss is a per-batch mean that includes them
        # (0.005 off the single-process value with one batch of 64). The 40 test rows end unevenly.
        per_device_eval_batch_size=8,
    )
    single = run_config(tmp / "single", per_device_train_batch_size=GLOBAL_BATCH, **options)
    assert single.rc == 0

    config = yaml.safe_load(Path(single.config_path).read_text(encoding="utf-8"))
    config.update(output_dir=str(tmp / "two" / "out"), per_device_train_batch_size=GLOBAL_BATCH // WORLD)
    path = tmp / "two.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    # `accelerate launch --cpu --num_processes 2` starts ONE process without MPI (its simple launcher
    # only fans out through mpirun). torchrun's launcher (--multi_gpu) starts two, and
    # ACCELERATE_USE_CPU makes each join a gloo process group on the CPU.
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "cpu.yaml"),
               "--multi_gpu", "--num_processes", str(WORLD), "--main_process_port", "0",
               str(ROOT / "recipes" / "run.py"), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, cwd=str(ROOT))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Path(single.output_dir), Path(config["output_dir"]), done


def test_two_processes_share_the_work(runs):
    two = runs[1]
    state = read_json(two / "trainer_state.json")
    assert state["global_step"] == STEPS
    assert read_json(two / "train_results.json")["train_samples"] == TRAIN_ROWS
    # 8 rows per process and step; 12 steps covered 2 epochs of 96 rows only if 2 processes took part
    assert state["train_batch_size"] == GLOBAL_BATCH // WORLD
    assert state["epoch"] == pytest.approx(STEPS * GLOBAL_BATCH / TRAIN_ROWS) == 2.0


def test_main_process_alone_writes_the_output_folder(runs):
    single, two, done = runs
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in single.iterdir())
    rows = read_predictions(two)
    expected = read_tsv(SAMPLE_TEST)[:TEST_ROWS]
    assert [row["id"] for row in rows] == [row["id"] for row in expected]  # once each, in file order
    lines = (two / "predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == TEST_ROWS + 1 and lines[0].startswith("id\ttext\tlabel")
    # one train log per step in the state, one results table per split in the output
    assert len(logged_losses(two)) == STEPS
    assert done.stdout.count("***** train metrics *****") == 1
    assert done.stdout.count("eval metrics") == 1 and done.stdout.count("test metrics") == 1
    assert read_json(two / "eval_results.json")["eval_samples"] == EVAL_ROWS
    assert "Traceback" not in done.stderr


def test_two_processes_reach_the_single_process_result(runs):
    """Same global batches (one sampler, batches dealt out in turn), gradients averaged by gloo.

    Tolerance 1e-5 absolute on weights, logged losses, eval loss and probabilities (float32
    summation order differs); the same predicted labels and eval metrics.
    """
    single, two, _ = runs
    weights_one, weights_two = load_file(str(single / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert weights_one.keys() == weights_two.keys()
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=0, atol=1e-5, msg=name)
    initial = load_file(str(single.parent.parent / "model" / "model.safetensors"))
    moved = max(float((weights_one[f"bert.{name}"] - tensor).abs().max()) for name, tensor in initial.items())
    assert moved > 1e-2  # training changed the weights: not two copies of the initial model

    np.testing.assert_allclose(logged_losses(two), logged_losses(single), rtol=0, atol=1e-5)
    eval_one, eval_two = read_json(single / "eval_results.json"), read_json(two / "eval_results.json")
    assert eval_two["eval_loss"] == pytest.approx(eval_one["eval_loss"], abs=1e-5)
    for key in ("eval_accuracy", "eval_macro_f1", "eval_samples"):
        assert eval_two[key] == eval_one[key], key
    one, other = read_predictions(single), read_predictions(two)
    assert [row["label"] for row in other] == [row["label"] for row in one]
    probabilities = [np.array([[float(row[f"prob_{name}"]) for name in LABELS] for row in rows])
                     for rows in (one, other)]
    np.testing.assert_allclose(probabilities[1], probabilities[0], rtol=0, atol=1e-5)
