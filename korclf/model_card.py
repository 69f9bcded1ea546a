"""The ``README.md`` of a model folder: Hub metadata plus what a reader needs to trust and use the model.

The YAML header is built with ``huggingface_hub.ModelCardData`` so that the Hub indexes the language, task,
base model and the evaluation results (``model-index``); the body says how the model was trained and how to
load it with and without korclf installed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

README_NAME = "README.md"
SPLIT_NAMES = {"eval": "validation", "test": "test"}
# Throughput figures the Trainer logs next to the metrics: not results, left out of the card.
THROUGHPUT = ("runtime", "samples_per_second", "steps_per_second")
# Bookkeeping shown in the table but not published as results in model-index.
NOT_RESULTS = ("samples", "epoch")
# korclf metric name -> (Hub metric type, display name, args) for model-index.
HUB_METRICS = {
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "weighted_f1": ("f1", "Weighted F1", {"average": "weighted"}),
    "macro_precision": ("precision", "Macro precision", {"average": "macro"}),
    "macro_recall": ("recall", "Macro recall", {"average": "macro"}),
    "loss": ("loss", "Loss", None),
}
# model_kind -> (task name in model-index, description in the card)
TASKS = {
    "sequence": ("Text classification", "Text classification: one label per text (or per text pair)."),
    "rbert": ("Relation classification",
              "Relation classification (R-BERT): the relation between two marked entities of a sentence."),
    "multi_encoder": ("Text classification",
                      "Text classification from several text columns, one encoder per column, fused into one label."),
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
EXAMPLE_TEXT = "배송도 빠르고 품질도 좋아요"
SETTINGS_NOTE = ("How the run read and prepared text (columns, normalisation, `max_length`) is recorded in "
                 "`model.config.korclf`; apply the same normalisation before classifying.\n")


def is_hub_id(name: Optional[str]) -> bool:
    """Whether ``name`` reads as a Hub repo id (``klue/bert-base``) rather than ``scratch`` or a local folder."""
    if not name or name == "scratch" or os.path.exists(name):
        return False
    return bool(HUB_ID.match(name)) and ".." not in name


def split_metrics(metrics: Mapping) -> dict[str, dict[str, float]]:
    """``{"eval_accuracy": .9, "test_loss": .3, ...}`` -> ``{"validation": {"accuracy": .9}, "test": {"loss": .3}}``.

    Only numbers are kept (the per-class report is a dict, handled separately); throughput figures are dropped.
    """
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.partition("_")
        if prefix not in SPLIT_NAMES or not name or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name in THROUGHPUT:
            continue
        out.setdefault(SPLIT_NAMES[prefix], {})[name] = value
    return out


def _redact(config):
    """Token values never go into a public card (``TrainingArguments.to_dict`` masks them too)."""
    if isinstance(config, Mapping):
        return {key: (f"<{str(key).upper()}>" if str(key).endswith("_token") and value is not None else _redact(value))
                for key, value in config.items()}
    if isinstance(config, (list, tuple)):
        return [_redact(value) for value in config]
    return config


def _data_sources(data) -> tuple[Optional[str], list[tuple[str, str]]]:
    """(Hub dataset name or None, [(split, file name)]): local files are named, never their full local path."""
    if data is None:
        return None, []
    if isinstance(data, str) and not os.path.splitext(data)[1] and not os.path.exists(data):
        return data, []
    if isinstance(data, str):
        data = [data]
    items = data.items() if isinstance(data, Mapping) else [("", path) for path in data]
    return None, [(split, os.path.basename(str(path))) for split, path in items if path]


def _saved_model_type(output_dir: str, model_kind: str) -> tuple[Optional[str], bool]:
    """(``model_type``, ships code) from the saved config.json: korclf's heads carry their code (``auto_map``),
    stock architectures do not. Before the model is saved, only ``model_kind`` is known."""
    path = os.path.join(output_dir, "config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        return saved.get("model_type"), "auto_map" in saved
    return None, model_kind != "sequence"


def _cell(value) -> str:
    """A table cell: a ``|`` inside a label would split the row."""
    return str(value).replace("|", "\\|")


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _metrics_table(results: dict[str, dict[str, float]]) -> str:
    splits = [split for split in SPLIT_NAMES.values() if split in results]
    names = list(dict.fromkeys(name for split in splits for name in results[split]))
    lines = ["| metric | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for name in names:
        cells = [_number(results[split][name]) if name in results[split] else "" for split in splits]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _class_table(report: Mapping, label_names: Sequence[str]) -> str:
    """Per-class precision / recall / F1 / support from scikit-learn's ``classification_report`` dict."""
    lines = ["| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for label in label_names:
        row = report.get(label)
        if isinstance(row, Mapping):
            lines.append(f"| {_cell(label)} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                         f"{int(row['support'])} |")
    return "\n".join(lines)


def _eval_results(results, task_name, dataset_type, dataset_name) -> list[EvalResult]:
    out = []
    for split, values in results.items():
        for name, value in values.items():
            if name in NOT_RESULTS:
                continue
            metric_type, display, args = HUB_METRICS.get(name, (name, name, None))
            out.append(EvalResult(task_type="text-classification", task_name=task_name, dataset_type=dataset_type,
                                  dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                                  metric_name=display, metric_args=args, metric_value=float(value)))
    return out


def _usage(source: str, model_kind: str, remote_code: bool) -> str:
    """Loading snippets: the ``pipeline`` for stock models; with and without korclf for korclf's own heads."""
    if not remote_code:
        return (
            "A standard `transformers` architecture: no korclf needed.\n\n"
            "```python\nfrom transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{source}")\n'
            f'print(classifier(["{EXAMPLE_TEXT}"], top_k=None))\n```\n\n' + SETTINGS_NOTE
        )
    inputs = {
        "sequence": (f'inputs = tokenizer(["{EXAMPLE_TEXT}"], truncation=True, padding=True, return_tensors="pt")\n'
                     "probabilities = model(**inputs).logits.softmax(-1)\n"),
        "rbert": ("# inputs: input_ids and attention_mask of the sentence with entity markers, plus e1_mask and\n"
                  "# e2_mask, (batch, seq) 0/1 masks over each entity's tokens (korclf.data.entities builds them)\n"),
        "multi_encoder": ("# inputs: {column}_input_ids and {column}_attention_mask for every column of\n"
                          "# model.config.text_columns (korclf.data.multi_column.tokenize_columns builds them)\n"),
    }.get(model_kind, "")
    header = "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"

    def load(extra: str) -> str:
        return (f'tokenizer = AutoTokenizer.from_pretrained("{source}")\n'
                f'model = AutoModelForSequenceClassification.from_pretrained("{source}"{extra}).eval()\n')

    return (
        "A korclf head: its code ships with the weights (`auto_map` in `config.json`).\n\n"
        "With korclf installed:\n\n"
        "```python\nimport korclf  # registers korclf's model types with the Auto classes\n"
        + header + load("") + inputs + "```\n\n"
        "Without korclf (runs the code shipped with the weights, which needs only torch and transformers):\n\n"
        "```python\n" + header + load(", trust_remote_code=True") + inputs + "```\n\n" + SETTINGS_NOTE
    )


def write_model_card(
    output_dir: str,
    *,
    base_model: Union[str, Sequence[str], None],
    model_kind: str,
    label_names: Sequence[str],
    data: Union[str, Sequence[str], Mapping[str, Optional[str]], None],
    config: Mapping,
    metrics: Mapping,
    language: str = "ko",
    repo_id: Optional[str] = None,
) -> str:
    """Write ``output_dir/README.md`` and return its path.

    ``data``: a Hub dataset name, or the data files (a list, or ``{split: path}``); only file names are shown.
    ``config``: the resolved run configuration (token values are masked). ``metrics``: the run's
    ``eval_*`` / ``test_*`` results; ``{prefix}_report`` dicts give per-class tables. ``repo_id``: the Hub
    repo the card will live in, used in the loading snippets (default: the local folder).
    """
    bases = [base_model] if isinstance(base_model, str) else list(base_model or [])
    hub_bases = [name for name in bases if is_hub_id(name)]
    dataset, files = _data_sources(data)
    results = split_metrics(metrics)
    model_name = (repo_id or os.path.basename(os.path.abspath(output_dir))).split("/")[-1]
    dataset_name = dataset or ", ".join(name for _, name in files) or "custom"
    task_name, task_text = TASKS.get(model_kind, ("Text classification", model_kind))
    model_type, remote_code = _saved_model_type(output_dir, model_kind)
    card_data = ModelCardData(
        language=language,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["korclf", "text-classification"] + ([model_type] if remote_code and model_type else []),
        base_model=(hub_bases[0] if len(hub_bases) == 1 else hub_bases) or None,
        datasets=[dataset] if dataset else None,
        metrics=sorted({HUB_METRICS.get(name, (name,))[0] for values in results.values() for name in values
                        if name not in NOT_RESULTS}) or None,
        model_name=model_name if results else None,
        eval_results=_eval_results(results, task_name, dataset or "custom", dataset_name) or None,
    )

    if hub_bases:
        base_text = ", ".join(f"[{name}](https://huggingface.co/{name})" for name in hub_bases)
    elif bases and bases[0] == "scratch":
        base_text = "None: a small BERT and its WordPiece/Unigram tokenizer trained from scratch on the training texts."
    else:
        base_text = ", ".join(f"`{os.path.basename(os.path.normpath(name))}` (a local checkpoint)" for name in bases)
    if dataset:
        data_text = f"Hub dataset [{dataset}](https://huggingface.co/datasets/{dataset})."
    elif files:
        data_text = "\n".join(f"- {split + ': ' if split else ''}`{name}`" for split, name in files)
    else:
        data_text = "Not recorded."
    label_rows = "\n".join(f"| {index} | {_cell(name)} |" for index, name in enumerate(label_names))
    sections = [
        f"# {model_name}",
        f"A Korean text classifier fine-tuned with korclf (model kind `{model_kind}`, {len(label_names)} labels).",
        f"## Base model\n\n{base_text or 'Not recorded.'}",
        f"## Task\n\n{task_text}",
        f"## Labels\n\n| id | label |\n|---|---|\n{label_rows}",
        f"## Data\n\n{data_text}",
        "## Training configuration\n\n<details>\n<summary>Every option of the run, as resolved</summary>\n\n"
        "```yaml\n" + yaml.safe_dump(_redact(json.loads(json.dumps(config, default=str))), allow_unicode=True,
                                     sort_keys=False) + "```\n\n</details>",
    ]
    evaluation = [_metrics_table(results)] if results else ["No evaluation was run."]
    for prefix, split in SPLIT_NAMES.items():
        report = metrics.get(f"{prefix}_report")
        if isinstance(report, Mapping):
            evaluation.append(f"Per class ({split}):\n\n" + _class_table(report, label_names))
    sections.append("## Evaluation\n\n" + "\n\n".join(evaluation))
    source = repo_id or os.path.abspath(output_dir)
    sections.append("## Usage\n\n" + _usage(source, model_kind, remote_code))

    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    path = os.path.join(output_dir, README_NAME)
    os.makedirs(output_dir, exist_ok=True)
    card.save(path)
    return path


__all__ = ["is_hub_id", "split_metrics", "write_model_card"]
