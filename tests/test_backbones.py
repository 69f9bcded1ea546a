"""korclf end to end from tiny local "pretrained" checkpoints of five architectures.

Each checkpoint is a randomly initialised ``AutoModel`` (hidden size 32, 2 layers) saved with the
shared in-process WordPiece tokenizer; korclf fine-tunes it, saves, and the reloaded folder must
predict exactly what the run wrote to predictions.tsv.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    assert_reload_matches_predictions,
    ARCHITECTURES,
    LABELS,
    SAMPLE_TEST,
    logged_losses,
    make_checkpoint,
    read_json,
    read_predictions,
    run_config,
)
from safetensors.numpy import load_file

MASK_ID = 4  # [MASK]: never in the inputs, so fine-tuning (no weight decay) leaves its embedding row as loaded


def word_embeddings(folder) -> np.ndarray:
    tensors = load_file(str(Path(folder) / "model.safetensors"))
    names = [name for name in tensors if name.endswith("word_embeddings.weight")]
    assert len(names) == 1, names
    return tensors[names[0]]


def fine_tune(tmp_path, architecture, **options):
    checkpoint = make_checkpoint(tmp_path / f"tiny-{architecture}", architecture)
    result = run_config(tmp_path, model_name_or_path=checkpoint, max_train_samples=40, per_device_train_batch_size=12,
                        max_steps=30, learning_rate=1.0e-2, do_predict=True, test_file=SAMPLE_TEST,
                        max_predict_samples=24, **options)
    assert result.rc == 0
    return checkpoint, Path(result.output_dir)


def check_run(checkpoint, out):
    losses = logged_losses(out)
    assert len(losses) == 30 and all(math.isfinite(loss) for loss in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2, losses
    # the encoder started from the checkpoint, not from a fresh initialisation
    before, after = word_embeddings(checkpoint), word_embeddings(out)
    assert before.shape == after.shape
    assert np.array_equal(before[MASK_ID], after[MASK_ID])
    assert not np.allclose(before, after)  # and it was fine-tuned
    # reload: same labels and probabilities as the run's predictions.tsv
    rows = read_predictions(out)
    assert len(rows) == 24
    assert_reload_matches_predictions(out, rows)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fine_tune_save_reload(tmp_path, architecture):
    checkpoint, out = fine_tune(tmp_path, architecture)
    config = read_json(out / "config.json")
    assert config["model_type"] == read_json(Path(checkpoint) / "config.json")["model_type"]
    assert config["architectures"][0].endswith("ForSequenceClassification")
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    max_position = config["max_position_embeddings"] - (2 if architecture == "xlm-roberta" else 0)
    assert 8 <= config["korclf"]["max_length"] <= max_position
    check_run(checkpoint, out)


def test_mean_pooling_on_pooler_less_electra(tmp_path):
    checkpoint, out = fine_tune(tmp_path, "electra", pooling="mean")
    config = read_json(out / "config.json")
    assert config["model_type"] == "korclf-encoder" and config["pooling"] == "mean"
    assert config["encoder"]["model_type"] == "electra"
    check_run(checkpoint, out)
