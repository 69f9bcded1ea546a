"""Relation-classification inputs: parse entity annotations, insert entity markers, tokenize.

Two input styles become one :class:`RelationExample` (character spans, end exclusive):

* KLUE-RE rows: ``sentence`` plus ``subject_entity`` / ``object_entity`` given as dicts, JSON
  strings or Python-literal strings (KLUE's CSV exports) with ``word``, ``start_idx``,
  ``end_idx`` (inclusive) and ``type``;
* SemEval-2010 Task 8 style: ``<e1>...</e1>`` and ``<e2>...</e2>`` tags inline in the sentence.

The subject (KLUE) or ``<e1>`` entity is always ``e1``, whichever comes first in the sentence.
:func:`mark_entities` wraps both entities in markers and :func:`encode_relation_batch` turns the
marked texts into model inputs with ``e1_mask`` / ``e2_mask`` for R-BERT, windowing long
sequences so that both entities survive truncation.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import KorclfError, where

ENTITY_MARKERS = ("plain", "punct", "typed_punct")
OVERFLOW_POLICIES = ("error", "skip")
_PLAIN_MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")


@dataclass(frozen=True)
class Entity:
    """An entity mention: ``sentence[start:end] == word`` (end exclusive)."""

    word: str
    start: int
    end: int
    type: str | None = None


@dataclass(frozen=True)
class RelationExample:
    """A sentence with its two entities; ``e1`` is the subject / ``<e1>`` entity."""

    id: object
    sentence: str
    e1: Entity
    e2: Entity


@dataclass(frozen=True)
class EntitySpans:
    """Character spans (end exclusive) in a marked text.

    ``e1`` / ``e2`` cover the entity words only; ``e1_marked`` / ``e2_marked`` also cover
    their markers (from the opening marker's first character to the closing marker's last).
    """

    e1: tuple[int, int]
    e2: tuple[int, int]
    e1_marked: tuple[int, int]
    e2_marked: tuple[int, int]


# --------------------------------------------------------------------------- KLUE-RE


def _entity_dict(value, row_id, column, file):
    """A KLUE entity as a dict, from a dict, a JSON string or a Python-literal string."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise KorclfError(
                    f"{where(file, row_id, column)}: cannot parse the entity {value!r}; expected a dict such as "
                    "{'word': ..., 'start_idx': ..., 'end_idx': ..., 'type': ...} (JSON or Python literal)."
                ) from None
        if isinstance(parsed, Mapping):
            return parsed
    raise KorclfError(
        f"{where(file, row_id, column)}: the entity must be a dict with word, start_idx, end_idx and type, "
        f"got {value!r}."
    )


def parse_klue_entity(value, sentence: str, *, row_id=None, column: str = "subject_entity", file=None) -> Entity:
    """Parse one KLUE entity and check that its (inclusive) span spells its word in ``sentence``."""
    data = _entity_dict(value, row_id, column, file)
    loc = where(file, row_id, column)
    missing = [key for key in ("word", "start_idx", "end_idx") if data.get(key) is None]
    if missing:
        raise KorclfError(f"{loc}: the entity {dict(data)!r} lacks {', '.join(missing)}.")
    try:
        start, end = int(data["start_idx"]), int(data["end_idx"])
    except (TypeError, ValueError):
        raise KorclfError(
            f"{loc}: start_idx and end_idx must be integers, got {data['start_idx']!r} and {data['end_idx']!r}."
        ) from None
    word = str(data["word"])
    if not 0 <= start <= end < len(sentence):
        raise KorclfError(
            f"{loc}: the span start_idx={start}, end_idx={end} (inclusive) of {word!r} lies outside the "
            f"sentence of {len(sentence)} characters."
        )
    found = sentence[start : end + 1]
    if found != word:
        raise KorclfError(
            f"{loc}: sentence[{start}:{end + 1}] is {found!r} but the entity word is {word!r} "
            "(end_idx is inclusive in KLUE-RE)."
        )
    entity_type = data.get("type")
    return Entity(word=word, start=start, end=end + 1, type=None if entity_type in (None, "") else str(entity_type))


def parse_klue_row(
    row: Mapping,
    *,
    row_id=None,
    file=None,
    sentence_column: str = "sentence",
    subject_column: str = "subject_entity",
    object_column: str = "object_entity",
) -> RelationExample:
    """A KLUE-RE row as a :class:`RelationExample` (subject -> e1, object -> e2).

    ``row_id`` names the row in error messages; it defaults to the row's ``id`` or ``guid``.
    """
    if row_id is None:
        row_id = row.get("id", row.get("guid"))
    for column in (sentence_column, subject_column, object_column):
        if row.get(column) is None:
            raise KorclfError(f"{where(file, row_id, column)}: the field is missing or empty.")
    sentence = str(row[sentence_column])
    e1 = parse_klue_entity(row[subject_column], sentence, row_id=row_id, column=subject_column, file=file)
    e2 = parse_klue_entity(row[object_column], sentence, row_id=row_id, column=object_column, file=file)
    _check_disjoint(e1, e2, row_id, file, sentence_column)
    return RelationExample(id=row_id, sentence=sentence, e1=e1, e2=e2)


def _check_disjoint(e1: Entity, e2: Entity, row_id, file, column):
    if e1.start < e2.end and e2.start < e1.end:
        raise KorclfError(
            f"{where(file, row_id, column)}: the entities {e1.word!r} [{e1.start}, {e1.end}) and "
            f"{e2.word!r} [{e2.start}, {e2.end}) overlap; markers cannot wrap both."
        )


# --------------------------------------------------------------------------- SemEval tags

_TAG = re.compile(r"</?e[12]>")


def parse_tagged_sentence(text: str, *, row_id=None, file=None, column: str = "sentence") -> RelationExample:
    """Strip ``<e1>``/``</e1>``/``<e2>``/``</e2>`` tags into a plain sentence with entity spans.

    Each tag must occur exactly once, opening before closing, and the entities may not nest or
    cross. Whitespace just inside the tags is kept in the sentence but not in the entity span.
    """
    loc = where(file, row_id, column)
    plain, positions, last, length = [], {}, 0, 0
    for match in _TAG.finditer(text):
        piece = text[last : match.start()]
        plain.append(piece)
        length += len(piece)
        tag = match.group(0)
        if tag in positions:
            raise KorclfError(f"{loc}: the tag {tag} occurs more than once in {text!r}.")
        positions[tag] = length
        last = match.end()
    plain.append(text[last:])
    sentence = "".join(plain)

    missing = [tag for tag in ("<e1>", "</e1>", "<e2>", "</e2>") if tag not in positions]
    if missing:
        raise KorclfError(
            f"{loc}: missing {', '.join(missing)} in {text!r}; both <e1>...</e1> and <e2>...</e2> are needed."
        )
    entities = {}
    for name in ("e1", "e2"):
        start, end = positions[f"<{name}>"], positions[f"</{name}>"]
        if end < start:
            raise KorclfError(f"{loc}: </{name}> comes before <{name}> in {text!r}.")
        word = sentence[start:end]
        start += len(word) - len(word.lstrip())
        end -= len(word) - len(word.rstrip())
        if end <= start:
            raise KorclfError(f"{loc}: the <{name}> entity is empty in {text!r}.")
        entities[name] = Entity(word=sentence[start:end], start=start, end=end)
    (s1, c1), (s2, c2) = (positions["<e1>"], positions["</e1>"]), (positions["<e2>"], positions["</e2>"])
    if s1 < c2 and s2 < c1:
        raise KorclfError(f"{loc}: the <e1> and <e2> tags nest or cross in {text!r}; entities must be separate.")
    return RelationExample(id=row_id, sentence=sentence, e1=entities["e1"], e2=entities["e2"])


# --------------------------------------------------------------------------- markers


def special_marker_tokens(marker: str) -> list[str]:
    """Tokens to add to the tokenizer as special tokens for ``marker`` (only ``plain`` needs any).

    ``punct`` and ``typed_punct`` use punctuation every vocabulary already has, which is their point
    (Zhou & Chen, 2021): no new, untrained embeddings.
    """
    _check_marker(marker)
    return list(_PLAIN_MARKERS) if marker == "plain" else []


def _check_marker(marker: str):
    if marker not in ENTITY_MARKERS:
        raise KorclfError(f"entity_marker must be one of {ENTITY_MARKERS}, got {marker!r}.")


def _markers(marker: str, entity: Entity, which: str, type_names, row_id, file) -> tuple[str, str]:
    if marker == "plain":
        return f"[{which.upper()}] ", f" [/{which.upper()}]"
    symbol = "@" if which == "e1" else "#"
    if marker == "punct":
        return f"{symbol} ", f" {symbol}"
    if entity.type is None:
        raise KorclfError(
            f"{where(file, row_id)}: entity_marker 'typed_punct' needs entity types but {entity.word!r} has none "
            "(SemEval-style data carries no types); use entity_marker 'plain' or 'punct'."
        )
    type_word = type_names.get(entity.type, entity.type) if type_names else entity.type
    inner = "*" if which == "e1" else "^"
    return f"{symbol} {inner} {type_word} {inner} ", f" {symbol}"


def mark_entities(
    example: RelationExample, marker: str, *, type_names: Mapping[str, str] | None = None, file=None
) -> tuple[str, EntitySpans]:
    """Insert entity markers into ``example.sentence``; return the marked text and its spans.

    * ``plain``: ``[E1] Bill [/E1]`` and ``[E2] Seattle [/E2]`` (add :func:`special_marker_tokens`
      to the tokenizer and resize the model's embeddings);
    * ``punct``: ``@ Bill @`` and ``# Seattle #``;
    * ``typed_punct`` (Zhou & Chen, 2021): ``@ * person * Bill @`` and ``# ^ city ^ Seattle #``;
      ``type_names`` may map type codes to words (``{"PER": "사람"}``).

    Only the markers and the space between marker and word are inserted; the text around each
    entity is left as it was.
    """
    _check_marker(marker)
    sentence = example.sentence
    placed = {}
    for which, entity in (("e1", example.e1), ("e2", example.e2)):
        placed[which] = (entity, *_markers(marker, entity, which, type_names, example.id, file))
    # Build left to right so every new offset is the running length of the output.
    order = sorted(placed, key=lambda name: placed[name][0].start)
    out, cursor, length, spans = [], 0, 0, {}
    for which in order:
        entity, opening, closing = placed[which]
        before = sentence[cursor : entity.start]
        marked_start = length + len(before)
        word_start = marked_start + len(opening)
        word_end = word_start + len(entity.word)
        marked_end = word_end + len(closing)
        out += [before, opening, entity.word, closing]
        length = marked_end
        cursor = entity.end
        spans[which] = (word_start, word_end)
        spans[which + "_marked"] = (marked_start, marked_end)
    out.append(sentence[cursor:])
    return "".join(out), EntitySpans(**spans)


# --------------------------------------------------------------------------- tokenization


def _token_range(offsets, first: int, last: int, span: tuple[int, int]) -> tuple[int, int] | None:
    """Positions [lo, hi) among ``offsets[first:last]`` whose characters overlap ``span``."""
    start, end = span
    # Empty offsets belong to tokens that cover no text; they never count as part of an entity.
    hits = [
        i for i in range(first, last) if offsets[i][0] < offsets[i][1] and offsets[i][0] < end and offsets[i][1] > start
    ]
    return (hits[0], hits[-1] + 1) if hits else None


def _template_lengths(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a single sequence."""
    probe = "a"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    extra = len(full) - len(bare)
    for prefix in range(extra + 1):
        if full[prefix : prefix + len(bare)] == bare:
            return prefix, extra - prefix
    raise KorclfError(f"cannot locate the text between the special tokens of {type(tokenizer).__name__}.")


def encode_relation_batch(
    tokenizer,
    marked_texts: Sequence[str],
    spans: Sequence[EntitySpans],
    max_length: int,
    include_markers: bool = False,
    on_overflow: str = "error",
    ids: Sequence | None = None,
    file: str | None = None,
) -> dict:
    """Tokenize marked texts and build ``e1_mask`` / ``e2_mask`` for R-BERT.

    Entity tokens are found from the tokenizer's character offsets (a fast tokenizer is required),
    so the masks do not depend on how markers are spelled. With ``include_markers`` the masks
    also cover the marker tokens.

    A sequence longer than ``max_length`` keeps a window of its text tokens that contains both
    marked entities, centred on them, between the tokenizer's own special tokens. When even the
    stretch from the first entity's opening marker to the last entity's closing marker does not
    fit, ``on_overflow="error"`` raises :class:`KorclfError` naming the row and ``"skip"`` drops it.

    Returns the per-row columns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
    tokenizer makes them), ``e1_mask``, ``e2_mask`` and ``row_index`` (position of each kept row in
    the input), plus ``"stats"``: ``{"windowed": int, "windowed_ids": [...], "skipped_ids": [...]}``
    for the caller to log; pop it before building a dataset from the columns. Nothing is padded.
    """
    if on_overflow not in OVERFLOW_POLICIES:
        raise KorclfError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}.")
    if not getattr(tokenizer, "is_fast", False):
        raise KorclfError(
            f"entity masks need character offsets, which only fast tokenizers give; {type(tokenizer).__name__} "
            "is not one. Load the tokenizer with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )
    if len(marked_texts) != len(spans):
        raise ValueError(f"got {len(marked_texts)} texts but {len(spans)} spans")
    ids = list(ids) if ids is not None else list(range(1, len(marked_texts) + 1))
    prefix, suffix = _template_lengths(tokenizer)
    budget = max_length - prefix - suffix
    if budget <= 0:
        raise KorclfError(
            f"max_length {max_length} leaves no room next to the tokenizer's {prefix + suffix} special tokens."
        )

    encoded = tokenizer(
        list(marked_texts), add_special_tokens=True, truncation=False, return_offsets_mapping=True, verbose=False
    )
    columns = [key for key in encoded.keys() if key != "offset_mapping"]
    result = {key: [] for key in columns}
    result.update(e1_mask=[], e2_mask=[], row_index=[])
    stats = {"windowed": 0, "windowed_ids": [], "skipped_ids": []}

    for i, (row_spans, row_id) in enumerate(zip(spans, ids)):
        offsets = encoded["offset_mapping"][i]
        total = len(offsets)
        first, last = prefix, total - suffix  # text tokens are offsets[first:last]
        ranges = {}
        for name in ("e1", "e2", "e1_marked", "e2_marked"):
            found = _token_range(offsets, first, last, getattr(row_spans, name))
            if found is None:
                raise KorclfError(
                    f"{where(file, row_id)}: the {name[:2]} entity "
                    f"{marked_texts[i][slice(*getattr(row_spans, name))]!r} produced no tokens."
                )
            ranges[name] = found

        keep = slice(first, last)
        if last - first > budget:
            lo = min(ranges["e1_marked"][0], ranges["e2_marked"][0])
            hi = max(ranges["e1_marked"][1], ranges["e2_marked"][1])
            if hi - lo > budget:
                if on_overflow == "skip":
                    stats["skipped_ids"].append(row_id)
                    continue
                raise KorclfError(
                    f"{where(file, row_id)}: the two entities with their markers span {hi - lo} tokens but "
                    f"max_length {max_length} leaves {budget} next to the special tokens; raise max_length or "
                    "set 'entity_overflow: skip' to drop such rows."
                )
            start = lo - (budget - (hi - lo)) // 2
            start = max(first, min(start, last - budget))
            keep = slice(start, start + budget)
            stats["windowed"] += 1
            stats["windowed_ids"].append(row_id)

        positions = [*range(prefix), *range(keep.start, keep.stop), *range(last, total)]
        for key in columns:
            values = encoded[key][i]
            result[key].append([values[p] for p in positions])
        which = ("e1_marked", "e2_marked") if include_markers else ("e1", "e2")
        for mask_name, span_name in zip(("e1_mask", "e2_mask"), which):
            lo, hi = ranges[span_name]
            result[mask_name].append([1 if lo <= p < hi else 0 for p in positions])
        result["row_index"].append(i)

    result["stats"] = stats
    return result


@dataclass
class RelationCollator:
    """Pad encoded relation rows into tensors, ``e1_mask`` / ``e2_mask`` included.

    ``DataCollatorWithPadding`` pads only the tokenizer's own inputs and would leave the entity
    masks ragged. A ``label`` column becomes ``labels``, as there.
    """

    tokenizer: object
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[Mapping]) -> dict:
        import torch

        masks = {key: [list(row[key]) for row in features] for key in ("e1_mask", "e2_mask")}
        rest = [{k: v for k, v in row.items() if k not in masks and k != "row_index"} for row in features]
        for row in rest:
            if "label" in row:
                row["labels"] = row.pop("label")
        padded = self.tokenizer.pad(rest, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        batch = dict(padded)
        length = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        for key, rows in masks.items():
            padded = [[0] * (length - len(r)) + r if left else r + [0] * (length - len(r)) for r in rows]
            batch[key] = torch.tensor(padded, dtype=torch.long)
        return batch


def encode_relation_examples(
    tokenizer,
    examples: Sequence[RelationExample],
    marker: str,
    max_length: int,
    include_markers: bool = False,
    on_overflow: str = "error",
    type_names: Mapping[str, str] | None = None,
) -> dict:
    """:func:`mark_entities` then :func:`encode_relation_batch`, with the examples' ids in errors and stats."""
    marked = [mark_entities(example, marker, type_names=type_names) for example in examples]
    return encode_relation_batch(
        tokenizer,
        [text for text, _ in marked],
        [row_spans for _, row_spans in marked],
        max_length,
        include_markers=include_markers,
        on_overflow=on_overflow,
        ids=[example.id for example in examples],
    )


__all__ = [
    "ENTITY_MARKERS",
    "Entity",
    "EntitySpans",
    "RelationCollator",
    "RelationExample",
    "encode_relation_batch",
    "encode_relation_examples",
    "mark_entities",
    "parse_klue_entity",
    "parse_klue_row",
    "parse_tagged_sentence",
    "special_marker_tokens",
]
