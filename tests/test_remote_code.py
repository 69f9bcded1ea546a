"""Model folders written by ``Trainer.save_model`` are self-contained.

Custom korclf models (``korclf-rbert``, ``korclf-encoder``, ``korclf-multi-encoder``) must load with
``trust_remote_code=True`` in a process where ``korclf`` cannot be imported, and without it where korclf is
imported; standard models need neither and work with ``pipeline("text-classification")``.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import LABELS, sample_rows, tiny_config, tiny_tokenizer
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
    pipeline,
)

from korclf.models import (
    EncoderClassifierConfig,
    EncoderForSequenceClassification,
    MultiEncoderConfig,
    MultiEncoderForSequenceClassification,
    RBertConfig,
    RBertForSequenceClassification,
)

KINDS = ("rbert", "encoder", "multi_encoder")
MODEL_CLASSES = {
    "rbert": RBertForSequenceClassification,
    "encoder": EncoderForSequenceClassification,
    "multi_encoder": MultiEncoderForSequenceClassification,
}
COLUMNS = ("title", "body")
SEQ_LEN = 16
# What run.py stores in config.korclf; a reloaded model must keep it.
KORCLF_SETTINGS = {"model_kind": None, "normalization": {"nfc": True, "max_repeat": 2}, "max_length": SEQ_LEN}


def build_model(kind, tokenizer):
    """A tiny model of each custom kind, with non-default options so that a wrong config would show."""
    torch.manual_seed(0)
    bert = tiny_config("bert", tokenizer)
    head = {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS))}
    if kind == "rbert":
        config = RBertConfig(encoder=bert, entity_layer="split", concat="cls_e1_e2_absdiff", activation="gelu", **head)
        model = RBertForSequenceClassification(config)
    elif kind == "encoder":
        model = EncoderForSequenceClassification(EncoderClassifierConfig(encoder=bert, pooling="mean", head="mlp",
                                                                         **head))
    else:
        electra = tiny_config("electra", tokenizer)
        config = MultiEncoderConfig(text_columns=list(COLUMNS), encoders=[bert, electra], pooling=["first", "mean"],
                                    fusion="concat_mlp", **head)
        model = MultiEncoderForSequenceClassification(config)
    model.config.korclf = {**KORCLF_SETTINGS, "model_kind": kind}
    return model


def make_features(kind, tokenizer, n):
    """``n`` training examples (dicts of 1-D tensors, fixed length) with the inputs each kind reads."""
    rows = sample_rows("train", 2 * n)
    texts, others = [row["text"] for row in rows[:n]], [row["text"] for row in rows[n:]]
    labels = [LABELS.index(row["label"]) for row in rows[:n]]
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=SEQ_LEN, return_tensors="pt")
    if kind == "multi_encoder":
        second = tokenizer(others, padding="max_length", truncation=True, max_length=SEQ_LEN, return_tensors="pt")
        inputs = {}
        for column, batch in zip(COLUMNS, (encoded, second)):
            inputs.update({f"{column}_{key}": value for key, value in batch.items()})
    else:
        inputs = dict(encoded)
    if kind == "rbert":
        e1, e2 = torch.zeros_like(encoded["input_ids"]), torch.zeros_like(encoded["input_ids"])
        e1[:, 1:3], e2[:, 3:5] = 1, 1
        inputs.update(e1_mask=e1, e2_mask=e2)
    return [{**{key: value[i] for key, value in inputs.items()}, "labels": torch.tensor(labels[i])} for i in range(n)]


def train_and_save(kind, tokenizer, folder):
    """Two optimiser steps with a stock Trainer, then ``trainer.save_model()`` as the recipe does."""
    model = build_model(kind, tokenizer)
    args = TrainingArguments(output_dir=str(folder), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                             use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True,
                             dataloader_pin_memory=False, seed=0, remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=make_features(kind, tokenizer, 8),
                      data_collator=default_data_collator, processing_class=tokenizer)
    trainer.train()
    trainer.save_model()
    return trainer.model.eval()


def eval_inputs(kind, tokenizer):
    return {key: value for key, value in default_data_collator(make_features(kind, tokenizer, 5)).items()
            if key != "labels"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """For every custom kind: a trained, saved folder, its inputs and the training process's logits."""
    root = tmp_path_factory.mktemp("remote_code")
    tokenizer = tiny_tokenizer()
    cases = {}
    for kind in KINDS:
        model = train_and_save(kind, tokenizer, root / kind)
        inputs = eval_inputs(kind, tokenizer)
        with torch.no_grad():
            cases[kind] = {"folder": str(root / kind), "inputs": inputs, "logits": model(**inputs).logits}
    torch.save({kind: {"inputs": case["inputs"]} for kind, case in cases.items()}, root / "inputs.pt")
    return root, cases


# Runs with `python -I` (no current directory or PYTHON* variables on sys.path); a meta-path finder in front of
# korclf's editable-install finder makes every `import korclf...` fail, and sys.path loses any folder holding korclf.
NO_KORCLF_SCRIPT = """
import importlib.abc, json, os, sys

class BlockKorclf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "korclf" or name.startswith("korclf."):
            raise ImportError(f"korclf is blocked in this process ({name})")
        return None

sys.meta_path.insert(0, BlockKorclf())
sys.path[:] = [p for p in sys.path if p and not os.path.isfile(os.path.join(p, "korclf", "__init__.py"))]
assert REPO not in sys.path
try:
    import korclf  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("korclf could still be imported")

import torch
from transformers import AutoModelForSequenceClassification

report = {}
for kind, case in torch.load(ROOT + "/inputs.pt").items():
    model = AutoModelForSequenceClassification.from_pretrained(ROOT + "/" + kind, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**case["inputs"]).logits
    torch.save(logits, ROOT + "/" + kind + "_logits.pt")
    report[kind] = {"module": type(model).__module__, "class": type(model).__name__,
                    "korclf": model.config.korclf, "model_type": model.config.model_type}
report["korclf_modules"] = sorted(name for name in sys.modules if name.split(".")[0] == "korclf")
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def without_korclf(trained):
    """Load every folder in one fresh process that cannot import korclf; its report and logits."""
    root, _ = trained
    repo = str(Path(__file__).resolve().parents[1])
    script = f"REPO = {repo!r}\nROOT = {str(root)!r}\n" + textwrap.dedent(NO_KORCLF_SCRIPT)
    env = {**os.environ, "HF_MODULES_CACHE": str(root / "hf_modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, env=env,
                            cwd=str(root), timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT "))
    report = json.loads(line[len("REPORT "):])
    logits = {kind: torch.load(root / f"{kind}_logits.pt") for kind in KINDS}
    return report, logits


def imported_roots(path):
    """Top-level modules of a file's absolute imports, and the module names of its relative imports."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            absolute |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                relative.add(node.module)
            else:
                absolute.add(node.module.split(".")[0])
    return absolute, relative


@pytest.mark.parametrize("kind", KINDS)
def test_folder_holds_code_that_imports_only_torch_and_transformers(trained, kind):
    _, cases = trained
    folder = Path(cases[kind]["folder"])
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config["auto_map"]
    assert auto_map["AutoModelForSequenceClassification"].endswith(MODEL_CLASSES[kind].__name__)
    for reference in (auto_map["AutoConfig"], auto_map["AutoModelForSequenceClassification"]):
        assert (folder / (reference.split(".")[0] + ".py")).is_file(), reference
    code_files = sorted(folder.glob("*.py"))
    assert "encoder_utils.py" in {path.name for path in code_files}
    allowed = set(sys.stdlib_module_names) | {"torch", "transformers"}
    for path in code_files:
        absolute, relative = imported_roots(path)
        assert absolute <= allowed, (path.name, absolute - allowed)
        for module in relative:  # every sibling it imports was copied too
            assert (folder / f"{module}.py").is_file(), (path.name, module)
    assert config["korclf"]["model_kind"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_loads_with_trust_remote_code_where_korclf_cannot_be_imported(trained, without_korclf, kind):
    _, cases = trained
    report, logits = without_korclf
    assert report["korclf_modules"] == []
    loaded = report[kind]
    assert loaded["module"].startswith("transformers_modules"), loaded["module"]
    assert loaded["class"] == MODEL_CLASSES[kind].__name__
    assert loaded["korclf"] == {**KORCLF_SETTINGS, "model_kind": kind}
    expected = cases[kind]["logits"]
    assert logits[kind].shape == expected.shape == (5, len(LABELS))
    assert torch.allclose(logits[kind], expected, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_loads_without_trust_remote_code_where_korclf_is_imported(trained, kind):
    _, cases = trained
    model = AutoModelForSequenceClassification.from_pretrained(cases[kind]["folder"]).eval()
    assert type(model) is MODEL_CLASSES[kind]  # korclf's registered class, not the folder's copy
    assert model.config.korclf["model_kind"] == kind
    with torch.no_grad():
        logits = model(**cases[kind]["inputs"]).logits
    assert torch.allclose(logits, cases[kind]["logits"], atol=1e-6)


def test_standard_model_loads_with_auto_classes_and_pipeline(tmp_path):
    """A stock architecture needs no code in the folder; pipeline() reads the label names from its config."""
    tokenizer = tiny_tokenizer()
    config = tiny_config("bert", tokenizer)
    config.num_labels, config.id2label = len(LABELS), dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    torch.manual_seed(0)
    features = make_features("encoder", tokenizer, 8)
    args = TrainingArguments(output_dir=str(tmp_path / "bert"), max_steps=2, per_device_train_batch_size=4,
                             learning_rate=1e-2, use_cpu=True, report_to="none", save_strategy="no",
                             disable_tqdm=True, dataloader_pin_memory=False, seed=0)
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=features,
                      data_collator=default_data_collator, processing_class=tokenizer)
    trainer.train()
    trainer.save_model()
    folder = tmp_path / "bert"
    assert not list(folder.glob("*.py")) and "auto_map" not in json.loads((folder / "config.json").read_text())

    texts = [row["text"] for row in sample_rows("test", 4)]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(model) is BertForSequenceClassification
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = reloaded_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**encoded).logits.double(), dim=-1).numpy()
        trained_probabilities = torch.softmax(trainer.model.eval()(**encoded).logits.double(), dim=-1).numpy()
    assert np.allclose(probabilities, trained_probabilities, atol=1e-6)

    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    results = classifier(texts, top_k=None)
    for text_results, expected in zip(results, probabilities):
        scores = {result["label"]: result["score"] for result in text_results}
        assert set(scores) == set(LABELS)
        assert np.allclose([scores[label] for label in LABELS], expected, atol=1e-5)
