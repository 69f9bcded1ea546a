"""Classify a file with a trained model folder (or a k-fold ensemble folder): ``korclf predict``.

The folder's ``config.korclf`` says how the run read its text (columns, normalisation, entity
markers, max length); :mod:`korclf.data.features` applies the same steps here. Rows are batched
by token length so batches carry little padding, and the forward passes run under
``torch.inference_mode()``; results come back in input order.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.features import input_builder, missing_columns
from .data.loading import find_empty_texts, load_file
from .data.processing import LENGTH_COLUMN, ROW_COLUMN, ColumnNormalizer
from .errors import KorclfError, where
from .kfold import ensemble_probabilities
from .metrics import softmax
from .reporting import write_predictions
from .text.normalize import TextNormalizer

logger = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"


@dataclass
class Predictions:
    """Predicted labels and probabilities for every input row, in input order."""

    ids: list
    texts: list[str]
    labels: list[str]
    probabilities: np.ndarray
    label_names: list[str]

    def write(self, path: str) -> None:
        """``id``, ``text``, ``label`` and one ``prob_<label>`` column per label, as a run's predictions.tsv."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        write_predictions(path, self.ids, self.texts, self.probabilities, self.label_names)


def default_settings(text_column: str) -> dict:
    """Settings for a folder trained outside korclf: one text column, no normalisation, the tokenizer's limit."""
    return {"model_kind": "sequence", "text_column": text_column, "text_pair_column": None, "normalization": None,
            "max_length": None, "label_column": None, "id_column": "id"}


class Predictor:
    """A loaded model folder that classifies datasets the way its training run read them."""

    def __init__(self, model_dir: str, device: Optional[str] = None, text_column: Optional[str] = None):
        from transformers import AutoModelForSequenceClassification

        from . import models  # noqa: F401  (registers korclf's model types)
        from .modeling import load_saved_tokenizers

        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise KorclfError(f"model folder '{model_dir}' has no config.json (and no {ENSEMBLE_FILE})")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(self.device).eval()
        settings = dict(getattr(self.model.config, "korclf", None) or default_settings("text"))
        if text_column:
            if settings["model_kind"] == "multi_encoder":
                raise KorclfError("--text-column does not apply to a multi-encoder model; it reads "
                                  f"{settings['text_columns']}")
            settings["text_column"] = text_column
        self.settings = settings
        tokenizer = load_saved_tokenizers(model_dir, settings)
        if settings.get("max_length") is None:
            from .data.processing import model_max_length

            settings["max_length"] = model_max_length(tokenizer, self.model.config) or 512
        self.builder = input_builder(settings, tokenizer)
        self.normalizer = TextNormalizer.from_dict(settings.get("normalization"))
        self.label_names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def prepare(self, dataset, source: str, id_column: Optional[str] = None):
        """Check and normalise the rows; returns (dataset, ids, display texts)."""
        missing_columns(self.builder, dataset, source)
        text_columns = self.builder.text_columns()
        for column in text_columns:
            empty = find_empty_texts(dataset[column], source, column)
            if empty:
                raise KorclfError(f"{where(source, empty[0] + 1, column)}: the text is empty or whitespace-only "
                                  f"({len(empty)} such row(s)); a classifier cannot label an empty text")
        id_column = id_column or self.settings.get("id_column")
        if id_column and id_column in dataset.column_names:
            ids = list(dataset[id_column])
            seen: dict = {}
            for row, value in enumerate(ids):
                if value in seen:
                    repeated = sum(count > 1 for count in Counter(ids).values())
                    raise KorclfError(f"{where(source, row + 1, id_column)}: id {value!r} was already used in row "
                                      f"{seen[value] + 1} ({repeated} repeated id(s) in the file); ids must be "
                                      "unique so predictions can be joined back")
                seen[value] = row
        else:
            ids = list(range(1, len(dataset) + 1))
        texts = self.builder.display_texts(dataset)
        if self.normalizer is not None:
            dataset = dataset.map(ColumnNormalizer(self.normalizer, text_columns), batched=True,
                                  desc="Normalising")
        return dataset, ids, texts

    @torch.inference_mode()
    def probabilities(self, dataset, source: str = "input", batch_size: int = 64,
                      progress: bool = True) -> np.ndarray:
        """Class probabilities for every row of a prepared dataset (rows the encoder skipped are an error)."""
        encoded = self.builder.encode(dataset, "predict", source)
        if len(encoded) != len(dataset):
            raise KorclfError(f"'{source}': {len(dataset) - len(encoded)} row(s) could not be encoded "
                              "(entities too far apart for max_length); see the log for their ids")
        order = np.argsort(np.asarray(encoded[LENGTH_COLUMN]), kind="stable")
        collate = self.builder.collator()
        logits = np.zeros((len(encoded), self.model.config.num_labels), dtype=np.float64)
        rows = encoded.remove_columns([c for c in encoded.column_names if c in ("labels",)])
        for start in tqdm(range(0, len(order), batch_size), desc="Predicting", unit="batch", disable=not progress):
            index = order[start:start + batch_size]
            batch = collate(rows.select(index).to_list())
            batch = {key: value.to(self.device) for key, value in batch.items()}
            logits[index] = self.model(**batch).logits.float().cpu().numpy()
        row_order = np.asarray(encoded[ROW_COLUMN])
        out = np.zeros_like(logits)
        out[row_order] = logits
        return softmax(out)


def _model_dirs(model_dir: str) -> tuple[list[str], str]:
    """The folders to predict with and how to combine them (a k-fold folder lists its folds)."""
    path = os.path.join(model_dir, ENSEMBLE_FILE)
    if not os.path.isfile(path):
        return [model_dir], "mean"
    with open(path, encoding="utf-8") as handle:
        ensemble = json.load(handle)
    folds = [os.path.join(model_dir, fold) for fold in ensemble["folds"]]
    return folds, ensemble.get("combine", "mean")


def predict(model_dir: str, input_file: Union[str, Sequence[str]], *, text_column: Optional[str] = None,
            id_column: Optional[str] = None, output_file: Optional[str] = None, batch_size: int = 64,
            device: Optional[str] = None, progress: bool = True) -> Predictions:
    """Classify ``input_file`` (csv / tsv / json / jsonl / parquet, or a list of texts) with ``model_dir``.

    ``model_dir`` is a trained model folder or a k-fold folder (its ``ensemble.json`` lists the fold
    folders; their probabilities are averaged, or majority-voted). Writes ``output_file`` (tsv) when given.
    """
    dirs, combine = _model_dirs(model_dir)
    fold_probabilities, result = [], None
    raw = load_file(input_file) if isinstance(input_file, str) else None  # read once for every fold
    source = input_file if raw is not None else "texts"
    for folder in dirs:
        predictor = Predictor(folder, device=device, text_column=text_column)
        dataset = raw
        if dataset is None:
            from datasets import Dataset

            column = predictor.settings["text_column"]
            dataset = Dataset.from_dict({column: [str(text) for text in input_file]})
        dataset, ids, texts = predictor.prepare(dataset, source, id_column)
        fold_probabilities.append(predictor.probabilities(dataset, source, batch_size, progress))
        if result is None:
            result = (ids, texts, predictor.label_names)
        elif predictor.label_names != result[2]:
            raise KorclfError(f"'{folder}' has labels {predictor.label_names} but '{dirs[0]}' has {result[2]}")
    ids, texts, label_names = result
    probabilities = (fold_probabilities[0] if len(fold_probabilities) == 1
                     else ensemble_probabilities(fold_probabilities, combine))
    predictions = Predictions(ids, texts, [label_names[i] for i in probabilities.argmax(-1)], probabilities,
                              label_names)
    if output_file:
        predictions.write(output_file)
        logger.info("Wrote %d predictions to %s", len(ids), output_file)
    return predictions
