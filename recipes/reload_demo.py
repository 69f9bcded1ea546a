#!/usr/bin/env python
"""Reload a trained korclf folder the way users do, and check it predicts like the run did.

    python recipes/reload_demo.py outputs/quickstart

Loads the folder with ``AutoModelForSequenceClassification`` and ``pipeline("text-classification")``,
normalises the texts with the settings saved in the model config, and compares the labels with the
run's ``predictions.tsv``.
"""
import csv
import os
import sys

from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from korclf.text.normalize import TextNormalizer


def main(folder: str) -> int:
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    settings = getattr(model.config, "korclf", {}) or {}
    normalizer = TextNormalizer.from_dict(settings.get("normalization"))
    with open(os.path.join(folder, "predictions.tsv"), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    texts = [row["text"] for row in rows]
    if normalizer is not None:
        texts = normalizer(texts)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1,
                        truncation=True, max_length=settings.get("max_length"))
    predicted = [result["label"] for result in classify(texts, batch_size=64)]
    same = sum(p == row["label"] for p, row in zip(predicted, rows))
    print(f"\nReloaded {folder} with AutoModelForSequenceClassification + pipeline('text-classification')")
    for text, result in list(zip(texts, predicted))[:5]:
        print(f"  {result:<10} {text}")
    print(f"pipeline() agrees with predictions.tsv on {same}/{len(rows)} rows")
    return 0 if same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "outputs/quickstart"))
