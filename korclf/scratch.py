"""A model with no pretrained checkpoint: a tokenizer trained on the training texts and a small BERT.

This keeps korclf usable offline and gives the quickstart and the tests real, trainable models.
"""

from __future__ import annotations

import json
import logging
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, PreTrainedTokenizerFast

from .errors import KorclfError

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


def train_tokenizer(texts: Iterable[str], kind: str = "wordpiece", vocab_size: int = 8000,
                    model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Train a WordPiece or Unigram tokenizer with BERT-style special tokens.

    Hangul is kept composed (NFC, no accent stripping: NFD would split syllables into jamo).
    """
    specials = list(SPECIAL_TOKENS.values())
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=1)
    elif kind == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="[UNK]")
    else:
        raise ValueError(f"scratch_tokenizer must be 'wordpiece' or 'unigram', got {kind!r}")
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    try:
        tokenizer.train_from_iterator(texts, trainer=trainer)
    except Exception as error:  # tokenizers raises a bare Exception (e.g. vocabulary smaller than the alphabet)
        raise KorclfError(f"could not train the scratch {kind} tokenizer (scratch_vocab_size {vocab_size}): "
                          f"{error}") from None
    tokenizer = _stable_ids(tokenizer, specials)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    logger.info("Trained a %s tokenizer with %d tokens on the training texts", kind, tokenizer.get_vocab_size())
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"],
                                   **SPECIAL_TOKENS)


def _stable_ids(tokenizer: Tokenizer, specials: list[str]) -> Tokenizer:
    """Number the tokens in a fixed order (special tokens, then the rest sorted).

    The trainers number tokens of equal frequency in hash-map order, which changes from one
    training to the next: same vocabulary, different ids, so a seeded run was not reproducible
    and the tokenisation cache (keyed on the tokenizer) never matched.
    """
    data = json.loads(tokenizer.to_str())
    model = data["model"]
    if model["type"] == "WordPiece":
        rest = sorted(token for token in model["vocab"] if token not in specials)
        model["vocab"] = {token: i for i, token in enumerate(specials + rest)}
    else:  # Unigram: [piece, score] pairs
        # EM sums in hash order too: scores differ in the last bits, enough to flip near-ties
        scores = {piece: round(score, 8) for piece, score in model["vocab"]}
        rest = sorted(piece for piece in scores if piece not in specials)
        model["vocab"] = [[piece, scores[piece]] for piece in specials + rest]
        model["unk_id"] = specials.index("[UNK]")
    return Tokenizer.from_str(json.dumps(data))


def scratch_config(model_args, tokenizer) -> BertConfig:
    """A small BERT encoder sized by the ``scratch_*`` options."""
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_args.scratch_hidden_size,
        num_hidden_layers=model_args.scratch_num_layers,
        num_attention_heads=model_args.scratch_num_heads,
        intermediate_size=model_args.scratch_intermediate_size,
        max_position_embeddings=model_args.scratch_max_position,
        pad_token_id=tokenizer.pad_token_id,
    )
