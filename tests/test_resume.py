"""Exact resume: a run killed after a checkpoint and restarted with ``resume_from_checkpoint`` ends where
an uninterrupted run ends, bit for bit.

The refusal to write into a non-empty output folder without ``overwrite_output_dir`` is tested in
test_pipeline.py::test_non_empty_output_dir_needs_overwrite.
"""

from pathlib import Path

import pytest
import torch
from helpers import logged_losses, read_json, run_config, sample_rows, write_table
from safetensors.torch import load_file
from transformers import TrainerCallback

import korclf.run

STEPS, SAVE_STEPS = 12, 4
TRAIN_ROWS = 96  # 6 steps of 16 per epoch: checkpoint-4 is inside epoch 1, checkpoint-8 inside epoch 2


class Killed(Exception):
    """Stands for the process being killed: nothing after it runs."""


class KillAfterSave(TrainerCallback):
    """Raises once the checkpoint of ``step`` is on disk (``on_save`` follows the write)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed after checkpoint-{self.step}")


def options(tmp_path: Path) -> dict:
    """Scratch model with dropout (so the RNG state matters), a validation file, checkpoints every 4 steps."""
    rows = sample_rows("train")
    data = tmp_path.parent / "data"
    data.mkdir(exist_ok=True)
    return dict(
        train_file=write_table(data / "train.tsv", rows[:TRAIN_ROWS]),
        validation_file=write_table(data / "validation.tsv", rows[TRAIN_ROWS:TRAIN_ROWS + 40]),
        max_train_samples=None, max_steps=STEPS, save_strategy="steps", save_steps=SAVE_STEPS,
        learning_rate=1.0e-2, cache_dir=str(tmp_path.parent / "hf_cache"),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume") / "a"
    result = run_config(tmp, **options(tmp))
    assert result.rc == 0
    return Path(result.output_dir)


def killed_run(tmp_path: Path, monkeypatch, step: int) -> Path:
    """Run until checkpoint-``step`` is written, then stop as a killed process would."""
    monkeypatch.setattr(korclf.run, "early_stopping_callbacks", lambda args: [KillAfterSave(step)])
    with pytest.raises(Killed):
        run_config(tmp_path, **options(tmp_path))
    monkeypatch.undo()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{s}" for s in range(SAVE_STEPS, step + 1,
                                                                                                SAVE_STEPS)]
    assert not (out / "model.safetensors").exists()  # the final model was never written
    return out


@pytest.mark.parametrize("kill_at,resume", [(4, "true"), (8, "path")], ids=["step4-resume-true", "step8-resume-path"])
def test_resumed_run_ends_bit_identical(tmp_path, monkeypatch, uninterrupted, kill_at, resume):
    """Weights compared with torch.equal, not allclose: both runs execute the same float operations in
    the same order on the same CPU threads, so any difference at all means lost state (optimizer
    moments, scheduler, dropout RNG, the sampler's position in the epoch) rather than rounding."""
    out = killed_run(tmp_path / "b", monkeypatch, kill_at)
    value = True if resume == "true" else str(out / f"checkpoint-{kill_at}")
    result = run_config(tmp_path / "b", resume_from_checkpoint=value, **options(tmp_path / "b"))
    assert result.rc == 0

    expected, resumed = load_file(str(uninterrupted / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    different = [name for name in expected if not torch.equal(expected[name], resumed[name])]
    assert not different, different
    assert (out / "model.safetensors").read_bytes() == (uninterrupted / "model.safetensors").read_bytes()

    state, reference = read_json(out / "trainer_state.json"), read_json(uninterrupted / "trainer_state.json")
    assert state["global_step"] == reference["global_step"] == STEPS
    assert logged_losses(out) == logged_losses(uninterrupted)  # steps before the kill come from the checkpoint
    metrics, reference_metrics = read_json(out / "eval_results.json"), read_json(uninterrupted / "eval_results.json")
    for key in ("eval_loss", "eval_accuracy", "eval_macro_f1", "eval_samples"):
        assert metrics[key] == reference_metrics[key], key


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("no checkpoint here", encoding="utf-8")
    result = run_config(tmp_path, resume_from_checkpoint=True, max_steps=1)
    err = capsys.readouterr().err
    assert result.rc == 2 and "Traceback" not in err
    assert err.startswith("korclf: error: ") and "resume_from_checkpoint" in err and str(tmp_path / "out") in err
    assert "checkpoint-*" in err

    missing = tmp_path / "out" / "checkpoint-99"
    result = run_config(tmp_path, resume_from_checkpoint=str(missing), max_steps=1)
    err = capsys.readouterr().err
    assert result.rc == 2 and str(missing) in err and "does not exist" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]
