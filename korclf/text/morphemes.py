"""Morpheme analysis with Kiwi (kiwipiepy), as the last step of text normalisation.

Korean words glue content (stems, nouns) to particles and endings; splitting them and dropping
the function morphemes lets a word-level model (TF-IDF baseline) or a tokenizer see the content.
The constructor keyword arguments are exactly the ``morphemes`` settings stored in a saved
config (``TextNormalizer(morphemes={...})``), so a reloaded model analyses text the same way.

Tags are Kiwi's (Sejong-style: NNG, NNP, JKS, JX, EP, EF, EC, SF, VV, VA, XSV, ...). A pattern is
a tag or a prefix ending in ``*`` (``J*`` = every particle). Kiwi marks (ir)regular conjugation
with ``-R``/``-I`` (``VA-I``); the marker is ignored when matching, so ``VA`` matches ``VA-I``.
"""

from __future__ import annotations

import functools
from typing import Iterable, Optional

from ..errors import KorclfError

INSTALL_HINT = "morpheme preprocessing needs kiwipiepy: pip install 'korclf[korean]'"

# Kiwi's tag set (kiwipiepy documentation, "품사 태그"), used to reject patterns that match nothing.
KIWI_TAGS = frozenset(
    "NNG NNP NNB NR NP VV VA VX VCP VCN MM MAG MAJ IC JKS JKC JKG JKO JKB JKV JKQ JX JC "
    "EP EF EC ETN ETM XPN XSN XSV XSA XSM XR SF SP SS SSO SSC SE SO SW SL SH SN SB UN "
    "W_URL W_EMAIL W_HASHTAG W_MENTION W_SERIAL W_EMOJI Z_CODA Z_SIOT "
    "USER0 USER1 USER2 USER3 USER4".split()
)

# Predicates and adjective/verb suffixes: Kiwi reports their stem (먹었다 -> 먹/VV), and
# ``lemma=True`` writes stem + "다", the dictionary form (먹다, 춥다, 아니다; 공부했다 -> 공부 하다).
LEMMA_TAGS = frozenset({"VV", "VA", "VX", "VCP", "VCN", "XSV", "XSA"})


def _import_kiwi():
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise KorclfError(INSTALL_HINT) from None
    return Kiwi


@functools.lru_cache(maxsize=None)
def get_kiwi():
    """The process-wide Kiwi instance: loading its model takes seconds, so it is built once, lazily."""
    return _import_kiwi()()


def _base_tag(tag: str) -> str:
    return tag.split("-", 1)[0]


def _compile_patterns(option: str, patterns: Iterable[str]) -> tuple[frozenset, tuple]:
    """Split patterns into exact tags and ``*`` prefixes; a pattern matching no Kiwi tag is an error."""
    exact, prefixes = set(), []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise KorclfError(f"morphemes.{option}: expected tag names such as 'NNG' or 'J*', got {pattern!r}")
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            matched = any(tag.startswith(prefix) for tag in KIWI_TAGS)
            prefixes.append(prefix)
        else:
            matched = pattern in KIWI_TAGS
            exact.add(pattern)
        if not matched:
            raise KorclfError(
                f"morphemes.{option}: {pattern!r} matches no Kiwi part-of-speech tag; "
                f"known tags: {' '.join(sorted(KIWI_TAGS))}"
            )
    return frozenset(exact), tuple(prefixes)


class MorphemeFilter:
    """Callable turning a batch of texts into strings of morphemes, filtered by part of speech.

    ``keep_pos``: only morphemes whose tag matches are kept; ``drop_pos``: those are removed
    (at most one of the two). ``lemma``: verbs and adjectives as dictionary forms (see
    :data:`LEMMA_TAGS`). ``join``: separator between morphemes.
    """

    def __init__(
        self,
        keep_pos: Optional[list[str]] = None,
        drop_pos: Optional[list[str]] = None,
        lemma: bool = False,
        join: str = " ",
    ):
        if keep_pos is not None and drop_pos is not None:
            raise KorclfError("morphemes: set keep_pos or drop_pos, not both")
        _import_kiwi()  # fail at configuration time, not at the first batch
        self.keep_pos = list(keep_pos) if keep_pos is not None else None
        self.drop_pos = list(drop_pos) if drop_pos is not None else None
        self.lemma = lemma
        self.join = join
        self._keep = self.keep_pos is not None  # True: keep the matches; False: drop them
        option = "keep_pos" if self._keep else "drop_pos"
        self._exact, self._prefixes = _compile_patterns(option, getattr(self, option) or [])
        self._tag_kept: dict[str, bool] = {}  # memo per reported tag: a handful of distinct tags

    def _kept(self, tag: str) -> bool:
        kept = self._tag_kept.get(tag)
        if kept is None:
            base = _base_tag(tag)
            matched = base in self._exact or base.startswith(self._prefixes)
            kept = self._tag_kept[tag] = matched == self._keep
        return kept

    def _surface(self, token) -> str:
        if self.lemma and _base_tag(token.tag) in LEMMA_TAGS:
            return token.form + "다"
        return token.form

    def __call__(self, texts: Iterable[str]) -> list[str]:
        # One call on the whole batch: Kiwi spreads the texts over its worker threads.
        analyses = get_kiwi().tokenize(list(texts))
        return [self.join.join(self._surface(t) for t in tokens if self._kept(t.tag)) for tokens in analyses]

    def to_dict(self) -> dict:
        return {"keep_pos": self.keep_pos, "drop_pos": self.drop_pos, "lemma": self.lemma, "join": self.join}
