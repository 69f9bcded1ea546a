"""Data profile: what to check before training (sizes, labels, lengths, empties, duplicates, leakage, scripts).

``profile_splits`` writes ``profile.json`` plus PNG charts and returns the same dict;
``format_profile`` renders it for the terminal (``korclf profile``). Everything is computed with
pandas/numpy on whole columns so that a 150k-row split profiles in seconds.

Conventions: rows are numbered from 1 (the first data row, as in :func:`korclf.errors.where`).
Percentiles are "covering" values (numpy ``inverted_cdf``): p90 is the smallest observed length
that at least 90 % of rows do not exceed, so ``max_length = p90 + special tokens`` truncates at most
10 % of rows. Empty or whitespace-only rows are reported on their own and left out of the
duplicate and leakage counts. Leakage compares every other split with the ``train`` split (the
first split when none is called ``train``).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .errors import KorclfError
from .text.normalize import CHAR_CLASSES

PERCENTILES = (50, 90, 96, 99)
MAX_LENGTH_PERCENTILES = (90, 96, 99)
FIRST_ROWS = 5
TOP_CHARS = 20
# Same character ranges as the normaliser's ``keep_chars``, so "other" is what keep_chars would drop.
SCRIPTS = {name: re.compile(f"[{CHAR_CLASSES[name]}]") for name in ("hangul", "latin", "hanja", "digits")}
CHAR_CLASS_NAMES = (*SCRIPTS, "whitespace", "other")


def _char_class(char: str) -> str:
    for name, pattern in SCRIPTS.items():
        if pattern.match(char):
            return name
    return "whitespace" if char.isspace() else "other"


def length_stats(lengths) -> dict:
    """Mean, min, max and covering percentiles of a list of lengths (all 0 for an empty split)."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return {"mean": 0.0, "min": 0, "max": 0, **{f"p{q}": 0 for q in PERCENTILES}}
    values = np.percentile(lengths, PERCENTILES, method="inverted_cdf")
    stats = {"mean": round(float(lengths.mean()), 2), "min": int(lengths.min()), "max": int(lengths.max())}
    stats.update({f"p{q}": int(v) for q, v in zip(PERCENTILES, values)})
    return stats


def char_profile(texts: pd.Series) -> dict:
    """Share of characters per script and the most frequent characters outside Hangul/Latin/digits/space.

    Counting the joined text once and classifying each distinct character once keeps this linear
    in the text size with a small constant.
    """
    counts = Counter("".join(texts))
    total = sum(counts.values())
    per_class = dict.fromkeys(CHAR_CLASS_NAMES, 0)
    others = Counter()
    for char, n in counts.items():
        name = _char_class(char)
        per_class[name] += n
        if name in ("hanja", "other"):
            others[char] = n
    shares = {name: round(n / total, 4) if total else 0.0 for name, n in per_class.items()}
    return {"char_shares": shares, "top_other_chars": others.most_common(TOP_CHARS)}


def label_profile(labels: pd.Series, all_labels: Sequence) -> dict:
    counts = labels.value_counts()
    counts = counts.reindex(sorted(counts.index, key=str))
    return {
        "counts": {str(label): int(n) for label, n in counts.items()},
        "imbalance_ratio": round(float(counts.max() / counts.min()), 3) if len(counts) else None,
        "missing_labels": [str(label) for label in all_labels if label not in counts.index],
    }


def token_lengths(texts: list[str], tokenizer) -> np.ndarray:
    """Tokens per text without special tokens, in one batched call.

    A fast tokenizer's Rust backend is called directly (``encode_batch_fast``, no offsets): the
    transformers wrapper would convert every id list to Python, which triples the time on 150k rows.
    The backend is copied first: a saved ``tokenizer.json`` may switch padding or truncation on.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend = copy.deepcopy(backend)
        backend.no_padding()
        backend.no_truncation()
        encoded = map(len, backend.encode_batch_fast(texts, add_special_tokens=False))
    else:
        encoded = map(len, tokenizer(texts, add_special_tokens=False)["input_ids"])
    return np.fromiter(encoded, dtype=np.int64, count=len(texts))


def profile_splits(
    splits: dict[str, tuple[list[str], Optional[list]]],
    tokenizer=None,
    *,
    output_dir: str,
    label_name: str = "label",
) -> dict:
    """Profile each split (name -> (texts, labels or None)); write ``profile.json`` and PNGs to ``output_dir``."""
    if not splits:
        raise KorclfError("profile: no split to profile")
    os.makedirs(output_dir, exist_ok=True)
    for name, (texts, labels) in splits.items():
        if labels is not None and len(labels) != len(texts):
            raise KorclfError(f"profile: split '{name}' has {len(texts)} texts but {len(labels)} labels")
    reference = "train" if "train" in splits else next(iter(splits))
    frames = {
        name: pd.DataFrame({"text": pd.Series(list(texts), dtype=object), "label": labels})
        for name, (texts, labels) in splits.items()
    }
    reference_texts = set(frames[reference]["text"])
    all_labels = sorted({label for _, labels in splits.values() if labels is not None for label in labels}, key=str)
    special_tokens = tokenizer.num_special_tokens_to_add(pair=False) if tokenizer is not None else 0

    profile = {"label_name": label_name, "reference_split": reference, "splits": {}}
    lengths = {"characters": {}, "tokens": {}}
    for name, frame in frames.items():
        texts = frame["text"]
        blank = texts.str.strip() == ""
        content = texts[~blank]
        split = {
            "rows": len(frame),
            "empty_rows": {"count": int(blank.sum()),
                           "first_rows": [int(i) + 1 for i in np.flatnonzero(blank)[:FIRST_ROWS]]},
            "duplicates": int(content.duplicated().sum()),
        }
        if name != reference:
            leaked = int(content.isin(reference_texts).sum())
            split["in_" + reference] = {"count": leaked, "share": round(leaked / len(frame), 4) if len(frame) else 0.0}
        if splits[name][1] is not None:
            split["labels"] = label_profile(frame["label"], all_labels)
        lengths["characters"][name] = texts.str.len().to_numpy()
        split["char_length"] = length_stats(lengths["characters"][name])
        if tokenizer is not None:
            lengths["tokens"][name] = token_lengths(texts.tolist(), tokenizer)
            split["token_length"] = length_stats(lengths["tokens"][name])
            split["max_length"] = {f"p{q}": split["token_length"][f"p{q}"] + special_tokens
                                   for q in MAX_LENGTH_PERCENTILES}
        split.update(char_profile(texts))
        profile["splits"][name] = split

    profile["plots"] = _plot(profile, lengths, output_dir)
    with open(os.path.join(output_dir, "profile.json"), "w", encoding="utf-8") as f:
        json.dump(profile, f, ensure_ascii=False, indent=2)
    return profile


def _plot(profile: dict, lengths: dict, output_dir: str) -> list[str]:
    """Label-share bars and length histograms (with the p90/p96/p99 lines); returns the file names."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    written = []
    label_counts = {name: s["labels"]["counts"] for name, s in profile["splits"].items() if "labels" in s}
    if label_counts:
        shares = pd.DataFrame(label_counts).fillna(0)
        fig = Figure(figsize=(max(6, 0.6 * len(shares)), 4), layout="constrained")
        ax = fig.subplots()
        (100 * shares / shares.sum()).plot.bar(ax=ax, rot=0)
        ax.set(title=f"{profile['label_name']}: share of rows per split", ylabel="%")
        written.append(_save(fig, output_dir, "labels.png"))
    for unit, per_split in lengths.items():
        if not per_split:
            continue
        fig = Figure(figsize=(7, 2.6 * len(per_split)), layout="constrained")
        for ax, (name, values) in zip(fig.subplots(len(per_split), 1, squeeze=False)[:, 0], per_split.items()):
            ax.hist(values, bins=min(100, max(1, int(values.max(initial=0)) + 1)))
            stats = profile["splits"][name]["char_length" if unit == "characters" else "token_length"]
            for q, style in zip(MAX_LENGTH_PERCENTILES, ("--", "-.", ":")):
                ax.axvline(stats[f"p{q}"], color="black", linestyle=style, label=f"p{q} = {stats[f'p{q}']}")
            ax.set(title=f"{name}: length in {unit}", ylabel="rows")
            ax.legend()
        written.append(_save(fig, output_dir, f"lengths_{unit}.png"))
    return written


def _save(fig, output_dir: str, filename: str) -> str:
    fig.savefig(os.path.join(output_dir, filename), dpi=100)
    return filename


def format_profile(profile: dict) -> str:
    """The terminal summary of a profile (one block per split)."""
    lines = []
    for name, s in profile["splits"].items():
        empty = s["empty_rows"]
        where_empty = ""
        if empty["count"]:
            more = ", ..." if empty["count"] > len(empty["first_rows"]) else ""
            where_empty = f" (rows {', '.join(map(str, empty['first_rows']))}{more})"
        lines.append(f"{name}: {s['rows']:,} rows, {empty['count']:,} empty{where_empty}, "
                     f"{s['duplicates']:,} duplicate rows")
        leak = s.get("in_" + profile["reference_split"])
        if leak is not None:
            lines.append(f"  also in {profile['reference_split']}: {leak['count']:,} rows ({leak['share']:.1%})")
        if "labels" in s:
            labels = s["labels"]
            counts = "  ".join(f"{label}={n:,}" for label, n in labels["counts"].items())
            lines.append(f"  {profile['label_name']}: {counts}  (imbalance {labels['imbalance_ratio']})")
            if labels["missing_labels"]:
                lines.append(f"  missing labels: {', '.join(labels['missing_labels'])}")
        lines.append("  characters: " + _format_stats(s["char_length"]))
        if "token_length" in s:
            lines.append("  tokens:     " + _format_stats(s["token_length"]))
            lines.append("  max_length covering " + ", ".join(f"{k[1:]}%: {v}" for k, v in s["max_length"].items()))
        lines.append("  scripts: " + "  ".join(f"{k} {v:.1%}" for k, v in s["char_shares"].items()))
        if s["top_other_chars"]:
            lines.append("  frequent other characters: " + "  ".join(f"{c!r} {n:,}" for c, n in s["top_other_chars"]))
    return "\n".join(lines)


def _format_stats(stats: dict) -> str:
    return f"mean {stats['mean']}, min {stats['min']}, " + ", ".join(
        f"p{q} {stats[f'p{q}']}" for q in PERCENTILES) + f", max {stats['max']}"


def profile_files(
    paths: dict[str, str],
    text_column: str,
    label_column: Optional[str] = None,
    tokenizer=None,
    *,
    output_dir: str,
) -> dict:
    """Profile plain files (split name -> path), for ``korclf profile FILE`` without a config.

    Files are read by the training loader (:func:`korclf.data.loading.load_file`), so the profile
    sees exactly the cells a run would: tsv without quoting, empty cells as ``''``.
    """
    from .data.loading import load_file, require_columns

    splits = {}
    for name, path in paths.items():
        dataset = load_file(path)
        require_columns(dataset, [c for c in (text_column, label_column) if c is not None], path)
        # Column[:] converts the Arrow column in one go; iterating it row by row is 40x slower.
        texts = ["" if text is None else str(text) for text in dataset[text_column][:]]
        splits[name] = (texts, dataset[label_column][:] if label_column else None)
    return profile_splits(splits, tokenizer, output_dir=output_dir, label_name=label_column or "label")
