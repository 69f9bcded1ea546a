"""Shared helpers of the core-pipeline tests: small data files, tiny tokenizers and checkpoints, runs.

Everything is local and tiny (hidden size 32, 1-2 layers) so that a whole end-to-end run takes
seconds on a shared 2-core CPU.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections import namedtuple
from pathlib import Path
from typing import Optional, Sequence

import yaml

import korclf

SAMPLE_DIR = Path(korclf.__file__).resolve().parent / "sample_data"
SAMPLE_TRAIN = str(SAMPLE_DIR / "train.tsv")
SAMPLE_TEST = str(SAMPLE_DIR / "test.tsv")
LABELS = ["economy", "food", "sports", "weather"]

# Architectures of test_backbones.py; every tiny checkpoint shares one in-process WordPiece tokenizer.
ARCHITECTURES = ("bert", "xlm-roberta", "electra", "distilbert", "albert")
TINY_MAX_POSITION = 64


# ----------------------------------------------------------------------------------------------- data


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """Rows of a tab-separated file as dicts of strings (no quote handling, as korclf reads them)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


@functools.lru_cache(maxsize=None)
def _sample(split: str) -> tuple:
    return tuple(read_tsv(SAMPLE_TRAIN if split == "train" else SAMPLE_TEST))


def sample_rows(split: str = "train", n: Optional[int] = None) -> list[dict]:
    """Copies of the shipped sample rows (``id``, ``text``, ``label``), the first ``n`` if given."""
    rows = [dict(row) for row in _sample(split)]
    return rows[:n] if n is not None else rows


def write_table(path: str | os.PathLike, rows: Sequence[dict], columns: Optional[Sequence[str]] = None,
                encoding: str = "utf-8") -> str:
    """Write ``rows`` as .csv / .tsv / .jsonl / .json (list of records) / .parquet, chosen by the extension.

    Values keep their Python type in JSON and parquet (integer labels stay integers); delimited
    files get the plain ``str`` of each value.
    """
    path = str(path)
    columns = list(columns or (rows[0].keys() if rows else []))
    ext = os.path.splitext(path)[1].lower()
    if ext in (".csv", ".tsv"):
        values = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
        with open(path, "w", encoding=encoding, newline="") as handle:
            if ext == ".tsv":  # plain tab-separated lines, no quoting (as korclf reads .tsv)
                assert not any("\t" in v or "\n" in v for line in values for v in line), "tab or newline in a value"
                handle.write("".join("\t".join(line) + "\n" for line in [columns] + values))
            else:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(columns)
                writer.writerows(values)
    elif ext == ".jsonl":
        with open(path, "w", encoding=encoding) as handle:
            for row in rows:
                handle.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
    elif ext == ".json":
        with open(path, "w", encoding=encoding) as handle:
            json.dump([{c: row.get(c) for c in columns} for row in rows], handle, ensure_ascii=False)
    elif ext == ".parquet":
        import pandas as pd

        pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns).to_parquet(path, index=False)
    else:
        raise ValueError(f"write_table: unsupported extension {ext!r}")
    return path


# ------------------------------------------------------------------------------ tokenizers and models


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(vocab_size: int = 400, model_max_length: int = TINY_MAX_POSITION):
    """A WordPiece tokenizer trained in-process by ``korclf.scratch.train_tokenizer`` on the sample texts.

    Cached: callers that change it (``model_input_names``) must work on a copy (:func:`copy.deepcopy`).
    """
    from korclf.scratch import train_tokenizer

    texts = [row["text"] for row in _sample("train")]
    return train_tokenizer(texts, "wordpiece", vocab_size, model_max_length)


def tiny_config(architecture: str, tokenizer, max_position: int = TINY_MAX_POSITION):
    """A config of ``architecture`` with hidden size 32, 2 layers and the tokenizer's vocabulary."""
    from transformers import AlbertConfig, BertConfig, DistilBertConfig, ElectraConfig, XLMRobertaConfig

    vocab = len(tokenizer)
    pad = tokenizer.pad_token_id
    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=max_position, pad_token_id=pad)
    if architecture == "bert":
        return BertConfig(**common)
    if architecture == "xlm-roberta":
        # RoBERTa positions start after padding_idx (= pad_token_id): two more rows than usable tokens.
        return XLMRobertaConfig(**{**common, "max_position_embeddings": max_position + 2},
                                bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                type_vocab_size=1)
    if architecture == "electra":
        return ElectraConfig(**common, embedding_size=32)
    if architecture == "albert":
        return AlbertConfig(**common, embedding_size=16, num_hidden_groups=1, inner_group_num=1)
    if architecture == "distilbert":
        return DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                max_position_embeddings=max_position, pad_token_id=pad)
    raise ValueError(f"unknown architecture {architecture!r}")


def make_checkpoint(folder: str | os.PathLike, architecture: str, tokenizer=None, seed: int = 0) -> str:
    """A "pretrained" checkpoint folder: a randomly initialised ``AutoModel`` + tokenizer, ``save_pretrained``.

    The tokenizer is the shared tiny WordPiece one; for DistilBERT it takes no ``token_type_ids``,
    like the real DistilBERT tokenizer.
    """
    import copy

    import torch
    from transformers import AutoModel

    tokenizer = copy.deepcopy(tokenizer or tiny_tokenizer())
    if architecture == "distilbert":
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    config = tiny_config(architecture, tokenizer)
    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    folder = str(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------- runs

RunResult = namedtuple("RunResult", "rc output_dir config_path")


def base_config(tmp_path: str | os.PathLike) -> dict:
    """A tiny from-scratch run on the shipped sample data: train + eval, no checkpoints, no loggers."""
    tmp_path = Path(tmp_path)
    return {
        "model_name_or_path": "scratch",
        "scratch_vocab_size": 400,
        "scratch_hidden_size": 32,
        "scratch_num_layers": 1,
        "scratch_num_heads": 2,
        "scratch_intermediate_size": 64,
        "scratch_max_position": 64,
        "train_file": SAMPLE_TRAIN,
        "text_column": "text",
        "label_column": "label",
        "id_column": "id",
        "max_train_samples": 96,
        "cache_dir": str(tmp_path / "hf_cache"),
        "output_dir": str(tmp_path / "out"),
        "do_train": True,
        "do_eval": True,
        "do_predict": False,
        "max_steps": 3,
        "learning_rate": 5.0e-3,
        "warmup_steps": 0,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
        "seed": 0,
    }


def run_config(tmp_path: str | os.PathLike, argv: Sequence[str] = (), name: str = "config.yaml",
               **overrides) -> RunResult:
    """Write :func:`base_config` updated by ``overrides`` (``None`` deletes a key) as YAML and run ``main``.

    ``argv`` are extra ``--key value`` command-line overrides. Returns the exit status, the output
    folder and the config path; the caller asserts on them.
    """
    from korclf.run import main

    config = base_config(tmp_path)
    for key, value in overrides.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path = Path(tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, allow_unicode=True, sort_keys=False)
    import logging

    before = list(logging.root.handlers)
    try:
        rc = main([str(path), *argv])
    finally:
        # korclf.run.setup_logging installs a handler on the current sys.stdout, which pytest
        # closes after the test: remove it so later tests do not log to a closed stream
        for handler in list(logging.root.handlers):
            if handler not in before:
                logging.root.removeHandler(handler)
    return RunResult(rc, config["output_dir"], str(path))


def logged_losses(output_dir: str | os.PathLike) -> list[float]:
    """Training losses logged in ``trainer_state.json``, in step order."""
    with open(Path(output_dir) / "trainer_state.json", encoding="utf-8") as handle:
        history = json.load(handle)["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_output_tsv(path: str | os.PathLike) -> list[dict]:
    """Rows of a tsv korclf wrote (``predictions.tsv``, ``oof_predictions.tsv``: ``csv`` with minimal quoting)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_predictions(output_dir: str | os.PathLike) -> list[dict]:
    """Rows of a run's ``predictions.tsv``."""
    return read_output_tsv(Path(output_dir) / "predictions.tsv")


def reload_and_predict(output_dir: str | os.PathLike, texts: Sequence[str]):
    """Reload a run's folder as a user would and classify raw ``texts``: (labels, probabilities).

    ``AutoModelForSequenceClassification`` + ``AutoTokenizer``, the texts normalised with the settings
    saved in ``config.korclf`` and truncated to its ``max_length``.
    """
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from korclf.text.normalize import TextNormalizer

    model = AutoModelForSequenceClassification.from_pretrained(str(output_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(output_dir))
    settings = model.config.korclf
    normalizer = TextNormalizer.from_dict(settings["normalization"])
    texts = normalizer(list(texts)) if normalizer is not None else list(texts)
    encoded = tokenizer(texts, truncation=True, max_length=settings["max_length"], padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**encoded).logits.double(), dim=-1).numpy()
    labels = [model.config.id2label[int(i)] for i in np.argmax(probabilities, axis=-1)]
    return labels, probabilities


def assert_reload_matches_predictions(output_dir, rows: list[dict]) -> None:
    """A reloaded folder gives the labels and probabilities the run wrote to predictions.tsv."""
    import numpy as np

    labels, probabilities = reload_and_predict(output_dir, [row["text"] for row in rows])
    assert labels == [row["label"] for row in rows]
    expected = np.array([[float(row[f"prob_{name}"]) for name in LABELS] for row in rows])
    assert np.allclose(probabilities, expected, atol=1e-5)
    assert np.array_equal(probabilities.argmax(1), expected.argmax(1))
