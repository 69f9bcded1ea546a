"""Hub-ready model folders: the model card (korclf.model_card) and the end-of-training push (korclf.hub).

Nothing reaches the network: uploads go to a fake ``hf_api`` put where the Trainer looks it up, and the offline
case uses the real client with HF_HUB_OFFLINE.
"""

import contextlib
import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

import httpx2
import huggingface_hub.constants
import numpy as np
import pytest
import torch
import transformers.trainer
import yaml
from helpers import LABELS, tiny_config, tiny_tokenizer
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
from transformers import BertForSequenceClassification, Trainer, TrainingArguments

from korclf.errors import KorclfError
from korclf.hub import defer_push, publish
from korclf.model_card import is_hub_id, write_model_card
from korclf.models import EncoderClassifierConfig, EncoderForSequenceClassification

REPO = "korclf-test/tiny-news"
TOKEN = "hf_not_a_real_token_123"
KOREAN_LABELS = ["경제", "음식", "스포츠", "날씨"]
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json"}
MODEL_FILES = {"config.json", "model.safetensors", "training_args.bin", "README.md"}
CODE_FILES = {"configuration_encoder.py", "modeling_encoder.py", "encoder_utils.py"}
METRICS = {
    "eval_loss": 0.4321, "eval_accuracy": 0.875, "eval_macro_f1": 0.8612, "eval_weighted_f1": 0.87,
    "eval_runtime": 1.25, "eval_samples_per_second": 80.0, "eval_samples": 100,
    "test_accuracy": 0.8125, "test_macro_f1": 0.7988, "test_samples": 48,
    "eval_report": {label: {"precision": 0.9 - i / 10, "recall": 0.8 - i / 20, "f1-score": 0.85 - i / 10,
                            "support": 25 + i} for i, label in enumerate(KOREAN_LABELS)},
}
CONFIG = {"model": {"model_name_or_path": "klue/bert-base", "model_kind": "sequence"},
          "data": {"train_file": "/private/data/train.tsv", "text_column": "text", "max_length": 64},
          "training": {"learning_rate": 5.0e-5, "num_train_epochs": 3, "hub_token": TOKEN, "seed": 42}}


def training_args(folder, **overrides):
    values = dict(output_dir=str(folder), push_to_hub=True, hub_model_id=REPO, hub_token=TOKEN, use_cpu=True,
                  report_to="none", save_strategy="no", disable_tqdm=True)
    return TrainingArguments(**{**values, **overrides})


def tiny_model(kind):
    """A stock BERT classifier, or korclf's pooled head (whose folder carries code)."""
    tokenizer = tiny_tokenizer()
    config = tiny_config("bert", tokenizer)
    head = {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
            "label2id": {label: i for i, label in enumerate(LABELS)}}
    torch.manual_seed(0)
    if kind == "standard":
        config.update(head)
        return BertForSequenceClassification(config), tokenizer
    return EncoderForSequenceClassification(EncoderClassifierConfig(encoder=config, pooling="mean", **head)), tokenizer


def saved_run(folder, kind):
    """What the recipe has at its end: push deferred, Trainer built, model saved, model card written."""
    model, tokenizer = tiny_model(kind)
    args = training_args(folder)
    settings = defer_push(args)
    trainer = Trainer(model=model, args=args, processing_class=tokenizer)
    trainer.save_model()
    write_model_card(str(folder), base_model="klue/bert-base", model_kind="sequence", label_names=LABELS,
                     data={"train": "/private/data/train.tsv"}, config=CONFIG, metrics={}, repo_id=REPO)
    return trainer, settings


def folder_digest(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


class FakeHub:
    """Stands in for ``transformers.trainer.hf_api()``: records calls and what ``upload_folder`` would send."""

    def __init__(self, create_error=None, upload_error=None):
        self.create_error, self.upload_error = create_error, upload_error
        self.created, self.uploads = [], []

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kwargs):
        self.created.append({"repo_id": repo_id, "token": token, "private": private})
        if self.create_error:
            raise self.create_error
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, token=None, **kwargs):
        if self.upload_error:
            raise self.upload_error
        folder = Path(folder_path)
        paths = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
        # upload_folder's own selection: the caller's ignore_patterns plus huggingface_hub's defaults
        files = set(filter_repo_objects(paths, ignore_patterns=list(ignore_patterns or []) + DEFAULT_IGNORE_PATTERNS))
        args_bin = torch.load(folder / "training_args.bin", weights_only=False)
        self.uploads.append({"repo_id": repo_id, "folder": str(folder), "token": token, "files": files,
                             "readme": (folder / "README.md").read_text(encoding="utf-8"),
                             "args_token": args_bin.hub_token})
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0123abcd")


@pytest.fixture
def fake_hub(monkeypatch):
    def install(**errors):
        hub = FakeHub(**errors)
        monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)
        return hub

    return install


def header(text):
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1))


def code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


# ------------------------------------------------------------------------------------------- model card


def test_model_card_header_labels_metrics_and_config(tmp_path):
    model, tokenizer = tiny_model("standard")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    path = write_model_card(str(tmp_path), base_model="klue/bert-base", model_kind="sequence",
                            label_names=KOREAN_LABELS, data={"train": "/private/data/train.tsv",
                                                             "test": "/private/data/test.tsv"},
                            config=CONFIG, metrics=METRICS)
    text = Path(path).read_text(encoding="utf-8")
    meta = header(text)
    assert meta["language"] == "ko"
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    assert meta["tags"] == ["korclf", "text-classification"] and meta["base_model"] == "klue/bert-base"
    assert "datasets" not in meta  # local files are no Hub dataset
    assert {"accuracy", "f1", "loss"} <= set(meta["metrics"])

    [index] = meta["model-index"]
    assert index["name"] == tmp_path.name
    assert {result["task"]["type"] for result in index["results"]} == {"text-classification"}
    values = {(result["dataset"]["split"], metric.get("name")): metric["value"]
              for result in index["results"] for metric in result["metrics"]}
    assert values == {("validation", "Loss"): 0.4321, ("validation", "Accuracy"): 0.875,
                      ("validation", "Macro F1"): 0.8612, ("validation", "Weighted F1"): 0.87,
                      ("test", "Accuracy"): 0.8125, ("test", "Macro F1"): 0.7988}
    assert len(ModelCard.load(path).data.eval_results) == 6  # huggingface_hub reads the same model-index

    body = text.split("\n---\n", 1)[1]
    label_rows = re.findall(r"^\| (\d+) \| (\S+) \|$", body, re.M)
    assert label_rows == [(str(i), label) for i, label in enumerate(KOREAN_LABELS)]
    assert "| accuracy | 0.8750 | 0.8125 |" in body and "| macro_f1 | 0.8612 | 0.7988 |" in body
    assert "| samples | 100 | 48 |" in body and "runtime" not in body
    for label, row in METRICS["eval_report"].items():
        assert (f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                f"{row['support']} |") in body
    assert "`train.tsv`" in body and "`test.tsv`" in body and "/private/data" not in body.split("```yaml")[0]

    [config_block] = code_blocks(body, "yaml")
    written = yaml.safe_load(config_block)
    assert written["training"]["hub_token"] == "<HUB_TOKEN>" and TOKEN not in text
    assert {**written, "training": {**written["training"], "hub_token": TOKEN}} == CONFIG
    for section in ("## Base model", "## Task", "## Labels", "## Data", "## Training configuration",
                    "## Evaluation", "## Usage"):
        assert section in body
    assert "trust_remote_code" not in body


def test_model_card_pipeline_snippet_runs(tmp_path):
    """The usage snippet of a standard model is real code: run it on the folder it describes."""
    model, tokenizer = tiny_model("standard")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    text = Path(write_model_card(str(tmp_path), base_model="scratch", model_kind="sequence", label_names=LABELS,
                                 data="nsmc", config={}, metrics={})).read_text(encoding="utf-8")
    [snippet] = code_blocks(text, "python")
    assert 'pipeline("text-classification"' in snippet
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(snippet, {})
    [scores] = eval(output.getvalue())
    assert sorted(score["label"] for score in scores) == sorted(LABELS)
    assert np.isclose(sum(score["score"] for score in scores), 1.0)


def test_model_card_of_custom_head_shows_both_loading_paths(tmp_path):
    model, tokenizer = tiny_model("custom")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    text = Path(write_model_card(str(tmp_path), base_model="scratch", model_kind="sequence", label_names=LABELS,
                                 data="nsmc", config={}, metrics={}, repo_id=REPO)).read_text(encoding="utf-8")
    meta = header(text)
    assert "base_model" not in meta and meta["datasets"] == ["nsmc"] and "model-index" not in meta
    assert meta["tags"] == ["korclf", "text-classification", "korclf-encoder"]
    assert "No evaluation was run." in text
    with_korclf, without_korclf = code_blocks(text, "python")
    assert "import korclf" in with_korclf and "trust_remote_code" not in with_korclf
    assert "import korclf" not in without_korclf and "trust_remote_code=True" in without_korclf
    assert f'from_pretrained("{REPO}"' in with_korclf

    # the korclf path, pointed at this folder, runs and gives a probability per label
    namespace = {}
    exec(with_korclf.replace(REPO, str(tmp_path)), namespace)
    probabilities = namespace["probabilities"]
    assert probabilities.shape == (1, len(LABELS)) and torch.allclose(probabilities.sum(), torch.tensor(1.0))
    assert type(namespace["model"]) is EncoderForSequenceClassification


def test_is_hub_id(tmp_path):
    assert is_hub_id("klue/bert-base") and is_hub_id("bert-base-multilingual-cased")
    for name in ("scratch", str(tmp_path), "./models/bert", "/abs/path", "a/b/c", "", None):
        assert not is_hub_id(name), name


# ------------------------------------------------------------------------------------------------ push


def test_stock_trainer_needs_the_network_at_init_and_defer_push_avoids_it(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model, tokenizer = tiny_model("standard")
    with pytest.raises(OSError):  # the premise: push_to_hub=True makes Trainer.__init__ create the repo
        Trainer(model=model, args=training_args(tmp_path / "stock"), processing_class=tokenizer)

    args = training_args(tmp_path / "korclf")
    settings = defer_push(args)
    assert settings.enabled and settings.repo_id == REPO and settings.token == TOKEN and TOKEN not in repr(settings)
    assert args.push_to_hub is False and args.hub_token is None and args.hub_model_id == REPO
    Trainer(model=model, args=args, processing_class=tokenizer)  # no network


def test_defer_push_checks_hub_model_id_before_training(tmp_path):
    with pytest.raises(KorclfError, match="hub_model_id"):
        defer_push(training_args(tmp_path, hub_model_id=None))
    with pytest.raises(KorclfError, match="hub_model_id.*not a Hub repo id"):
        defer_push(training_args(tmp_path, hub_model_id="not/a/valid id"))
    args = training_args(tmp_path, push_to_hub=False)
    assert defer_push(args).enabled is False
    assert args.hub_token == TOKEN  # untouched when there is nothing to push


@pytest.mark.parametrize("kind", ["standard", "custom"])
def test_publish_pushes_model_tokenizer_code_and_card(tmp_path, fake_hub, kind):
    folder = tmp_path / "out"
    trainer, settings = saved_run(folder, kind)
    card = (folder / "README.md").read_text(encoding="utf-8")
    (folder / "checkpoint-3").mkdir()
    (folder / "checkpoint-3" / "optimizer.pt").write_bytes(b"x")
    (folder / "_partial.tmp").write_text("x")
    (folder / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.5}))
    hub = fake_hub()

    status = publish(trainer, settings, str(folder))

    assert status == {"status": "pushed", "repo_id": REPO, "url": f"https://huggingface.co/{REPO}/commit/0123abcd",
                      "message": None}
    assert hub.created == [{"repo_id": REPO, "token": TOKEN, "private": None}]
    [upload] = hub.uploads
    assert upload["repo_id"] == REPO and upload["token"] == TOKEN and upload["folder"] == str(folder)
    expected = MODEL_FILES | TOKENIZER_FILES | {"eval_results.json"} | (CODE_FILES if kind == "custom" else set())
    assert upload["files"] == expected
    assert upload["readme"] == card  # korclf's card, not the Trainer's generic one
    assert upload["args_token"] is None  # the token never lands in the uploaded training_args.bin
    assert "create_model_card" not in vars(trainer)  # the Trainer is left as it was


@pytest.mark.parametrize("kind", ["standard", "custom"])
def test_publish_offline_gives_one_clear_message_and_keeps_the_folder(tmp_path, monkeypatch, caplog, kind):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    folder = tmp_path / "out"
    trainer, settings = saved_run(folder, kind)
    before = folder_digest(folder)
    caplog.set_level(logging.ERROR, logger="korclf.hub")

    status = publish(trainer, settings, str(folder))  # the real Hub client, which refuses offline

    assert status["status"] == "failed" and status["repo_id"] == REPO
    message = status["message"]
    assert "\n" not in message and "OfflineModeIsEnabled" in message
    assert f"saved locally in '{folder}'" in message and f"hf upload {REPO} {folder} ." in message
    assert [record.getMessage() for record in caplog.records
            if record.name == "korclf.hub" and record.levelno >= logging.ERROR] == [message]
    assert folder_digest(folder) == before
    assert (folder / "model.safetensors").is_file()


def test_publish_reports_http_and_connection_errors(tmp_path, fake_hub):
    folder = tmp_path / "out"
    trainer, settings = saved_run(folder, "standard")
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    unauthorized = HfHubHTTPError("401 Unauthorized: invalid token", response=httpx2.Response(401, request=request))
    fake_hub(create_error=unauthorized)
    status = publish(trainer, settings, str(folder))
    assert status["status"] == "failed" and "HfHubHTTPError: 401 Unauthorized" in status["message"]

    hub = fake_hub(upload_error=httpx2.ConnectError("connection refused"))  # repo created, upload fails
    status = publish(trainer, settings, str(folder))
    assert status["status"] == "failed" and "ConnectError: connection refused" in status["message"]
    assert hub.created and (folder / "model.safetensors").is_file()


def test_publish_does_nothing_when_push_is_off(tmp_path, fake_hub):
    model, tokenizer = tiny_model("standard")
    args = training_args(tmp_path, push_to_hub=False)
    trainer = Trainer(model=model, args=args, processing_class=tokenizer)
    hub = fake_hub()
    assert publish(trainer, defer_push(args), str(tmp_path))["status"] == "skipped"
    assert hub.created == [] and hub.uploads == []
    assert not os.path.exists(tmp_path / "README.md")


def test_recipe_with_push_to_hub_offline_keeps_the_model_and_says_so(tmp_path, capsys):
    """The whole recipe: push_to_hub on a machine without network trains, saves, writes the card, then fails clearly."""
    from helpers import run_config

    result = run_config(tmp_path, push_to_hub=True, hub_model_id="someone/korclf-test", max_steps=2)
    assert result.rc == 0
    folder = Path(result.output_dir)
    for name in ("model.safetensors", "config.json", "README.md", "tokenizer.json"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "someone/korclf-test" in card and "eval" in card.lower()
    output = capsys.readouterr()
    assert "someone/korclf-test" in output.out + output.err
    assert "Traceback" not in output.err
