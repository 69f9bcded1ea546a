#!/usr/bin/env python
"""Korean-text benchmark on NSMC (150,000 train / 50,000 test movie reviews).

    OMP_NUM_THREADS=1 python bench/bench_korean_text.py [--rows N]

1. Kiwi morpheme analysis (particles J*, endings E* and symbols S* dropped), in sentences/s:
   cold, through korclf's ``MorphemeFilter`` batch API (batches of 1,000, as ``datasets.map``;
   Kiwi's model load timed apart); then the normalisation step of a run whose normaliser ends
   with that morphemes step (``prepare_splits`` -> ``cached_map``), twice on a fresh temporary
   ``HF_DATASETS_CACHE``: the first run analyses and writes the Arrow cache, the second loads it.
2. TF-IDF + logistic regression (``korclf.baseline.run_baseline``), trained on train and scored on
   test: character 1-3-grams on the raw reviews (reference: 87.37 % accuracy) against morpheme
   1-2-grams of the same rows (the analysis of step 1, handed over as the output of a run
   normaliser with that morphemes step, so Kiwi does not run a third time).

``--rows N`` keeps the first N training rows and the first N/3 test rows (NSMC is shuffled).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED_DATA, print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DROP_POS = ["J*", "E*", "S*"]
MAP_BATCH = 1000  # datasets.map's default batch size
REFERENCE_CHAR_ACCURACY = 0.8737


def data_files(rows, folder: str) -> dict:
    """The NSMC files, or their first ``rows`` / ``rows // 3`` data rows copied into ``folder``."""
    paths = {split: os.path.join(SHARED_DATA, "nsmc", f"{split}.tsv") for split in ("train", "test")}
    if rows is None:
        return paths
    out = {}
    for split, limit in (("train", rows), ("test", max(rows // 3, 1))):
        with open(paths[split], encoding="utf-8") as handle:
            lines = [line for _, line in zip(range(limit + 1), handle)]
        out[split] = os.path.join(folder, f"{split}.tsv")
        with open(out[split], "w", encoding="utf-8") as handle:
            handle.writelines(lines)
    return out


class CacheLog(logging.Handler):
    """Collects what ``cached_map`` says about each split: computed or loaded from the cache."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def arguments(files: dict, cache: str, morphemes: bool):
    from korclf.arguments import DataArguments, ModelArguments

    data_args = DataArguments(train_file=files["train"], validation_file=files["test"], text_column="document",
                              label_column="label", empty_text="drop",
                              morpheme_drop_pos=list(DROP_POS) if morphemes else None)
    return ModelArguments(cache_dir=cache), data_args


def kiwi_throughput(files: dict, cache: str) -> tuple[dict, dict]:
    """Section 1; returns the figures and the raw and analysed texts of the rows both runs keep."""
    from korclf.data.loading import load_splits
    from korclf.data.prepare import prepare_splits
    from korclf.text.morphemes import MorphemeFilter, get_kiwi

    model_args, data_args = arguments(files, cache, morphemes=True)
    raw = load_splits(data_args, cache)  # CSV -> Arrow once, so that no timing below includes it
    texts = {split: [text for text in raw[name]["document"] if text.strip()]
             for split, name in (("train", "train"), ("test", "validation"))}
    labels = {split: [row for row, text in zip(raw[name]["label"], raw[name]["document"]) if text.strip()]
              for split, name in (("train", "train"), ("test", "validation"))}
    everything = texts["train"] + texts["test"]
    n = len(everything)

    start = time.perf_counter()
    get_kiwi()
    load_s = time.perf_counter() - start
    morphemes = MorphemeFilter(drop_pos=list(DROP_POS))
    start = time.perf_counter()
    analysed = []
    for first in range(0, n, MAP_BATCH):
        analysed.extend(morphemes(everything[first:first + MAP_BATCH]))
    cold_s = time.perf_counter() - start

    handler = CacheLog()
    processing_logger = logging.getLogger("korclf.data.processing")
    processing_logger.addHandler(handler)
    processing_logger.setLevel(logging.INFO)
    timings, runs = {}, {}
    for run in ("first", "second"):
        handler.messages.clear()
        start = time.perf_counter()
        runs[run] = prepare_splits(model_args, data_args, seed=42)
        timings[run] = time.perf_counter() - start
        timings[f"{run}_log"] = list(handler.messages)
    processing_logger.removeHandler(handler)

    second = runs["second"]
    from_cache = all("loaded from the datasets cache" in message for message in timings["second_log"])
    computed = all("processing" in message for message in timings["first_log"])
    emptied = sum(split.get("dropped_empty_normalized", 0) for split in second.report["splits"].values())
    # the run's analysis is the MorphemeFilter's, less the rows it left empty (dropped by empty_text: drop)
    kept = [text for text in analysed if text.strip()]
    same = second.splits["train"]["document"][:] + second.splits["validation"]["document"][:] == kept

    result = {
        "sentences": n, "kiwi_workers": get_kiwi().num_workers, "map_batch_size": MAP_BATCH,
        "kiwi_load_s": load_s, "cold_s": cold_s, "cold_sentences_per_s": n / cold_s,
        "cold_with_load_sentences_per_s": n / (cold_s + load_s),
        "prepare_first_s": timings["first"], "prepare_first_sentences_per_s": n / timings["first"],
        "prepare_second_s": timings["second"], "prepare_second_sentences_per_s": n / timings["second"],
        "second_vs_first": timings["first"] / timings["second"],
        "first_run_computed": computed, "second_run_from_cache": from_cache,
        "rows_emptied_by_analysis": emptied, "run_output_equals_morpheme_filter": same,
    }
    print_table(f"Kiwi morpheme analysis, drop_pos {DROP_POS} ({n:,} sentences, Kiwi workers "
                f"{result['kiwi_workers']})", ["path", "seconds", "sentences/s"], [
        ["Kiwi model load", load_s, "-"],
        ["MorphemeFilter batch API, cold", cold_s, result["cold_sentences_per_s"]],
        ["prepare_splits with morphemes step, 1st run (computes)", timings["first"],
         result["prepare_first_sentences_per_s"]],
        ["prepare_splits with morphemes step, 2nd run (cache)", timings["second"],
         result["prepare_second_sentences_per_s"]],
    ])
    print(f"2nd run = {result['second_vs_first']:.0f}x the 1st; 1st computed: {computed}; 2nd from cache: "
          f"{from_cache}; run output equals MorphemeFilter: {same}; rows left empty by the analysis: {emptied}")
    analysed_by_split = {"train": analysed[:len(texts["train"])], "test": analysed[len(texts["train"]):]}
    return result, {"texts": texts, "labels": labels, "analysed": analysed_by_split}


def baselines(data: dict, output_dir: str) -> dict:
    """Section 2: both feature sets through ``korclf.baseline`` on the same rows."""
    from korclf.baseline import run_baseline
    from korclf.text.normalize import TextNormalizer

    label_names = sorted(set(data["labels"]["train"]))
    label2id = {name: i for i, name in enumerate(label_names)}
    labels = {split: [label2id[label] for label in values] for split, values in data["labels"].items()}
    # the normaliser a run with only the morphemes step builds (DataArguments.normalization())
    run_normalizer = TextNormalizer(nfc=False, collapse_whitespace=False, max_repeat=None, keep_chars=None,
                                    morphemes={"keep_pos": None, "drop_pos": list(DROP_POS), "lemma": False})
    variants = {
        "char": {"texts": data["texts"], "features": "char", "normalizer": None},
        "morph": {"texts": data["analysed"], "features": "morph", "normalizer": run_normalizer},
    }
    results, rows = {}, []
    for name, variant in variants.items():
        texts = variant["texts"]
        start = time.perf_counter()
        metrics = run_baseline(texts["train"], labels["train"], {"test": (texts["test"], labels["test"])},
                               label_names, os.path.join(output_dir, name), features=variant["features"],
                               normalizer=variant["normalizer"], normalized=True, seed=42)["test"]
        seconds = time.perf_counter() - start
        with open(os.path.join(output_dir, name, "baseline_results.json"), encoding="utf-8") as handle:
            vocabulary = json.load(handle)["settings"]["vocabulary_size"]
        results[name] = {"test_accuracy": metrics["test_accuracy"], "test_macro_f1": metrics["test_macro_f1"],
                         "vocabulary_size": vocabulary, "fit_and_score_s": seconds,
                         "train_rows": len(texts["train"]), "test_rows": len(texts["test"])}
        rows.append([name, 100 * metrics["test_accuracy"], 100 * metrics["test_macro_f1"], vocabulary, seconds])
    print_table("TF-IDF + logistic regression on NSMC test (korclf.baseline)",
                ["features", "accuracy %", "macro-F1 %", "vocabulary", "seconds"], rows)
    print(f"reference (character 1-3-grams): {100 * REFERENCE_CHAR_ACCURACY:.2f} %")
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="first N training rows (and N/3 test rows)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_korean_text_") as tmp:
        # before datasets is imported: every Arrow file of this run goes to a fresh cache
        os.environ["HF_DATASETS_CACHE"] = os.path.join(tmp, "hf_datasets")
        import datasets

        datasets.disable_progress_bars()
        files = data_files(args.rows, tmp)
        kiwi, data = kiwi_throughput(files, os.path.join(tmp, "hf_datasets"))
        baseline = baselines(data, os.path.join(tmp, "baseline"))
    source = {split: os.path.join(SHARED_DATA, "nsmc", f"{split}.tsv") for split in ("train", "test")}
    write_results("bench_korean_text", {"rows_option": args.rows, "files": source, "kiwi": kiwi,
                                        "baseline": baseline, "reference_char_accuracy": REFERENCE_CHAR_ACCURACY})


if __name__ == "__main__":
    main()
