"""Korean text normalisation, applied identically at train and predict time.

The settings live in a plain dict (``TextNormalizer.to_dict``) that is stored in the saved
model config under ``korclf["normalization"]``, so a reloaded model normalises exactly like the
run that trained it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Optional

from ..errors import KorclfError

# Named character classes for ``keep_chars``; anything else is read as a regex character-class body.
CHAR_CLASSES = {
    "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3",
    "latin": "A-Za-z",
    "digits": "0-9",
    "hanja": "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff",
    "punct": re.escape(".,!?~'\"()[]%:;-/&+"),
    "space": " ",
}
_WHITESPACE = re.compile(r"\s+")


#: Bumped whenever the normaliser's output changes for the same settings (2: digits are never squeezed),
#: so the datasets cache of an older korclf is not reused.
NORMALIZER_REVISION = 2

def _keep_pattern(keep_chars: str) -> re.Pattern:
    """Regex matching every character *outside* the kept set.

    ``keep_chars`` is a comma list of names from :data:`CHAR_CLASSES` (``"hangul,latin,digits,punct"``);
    a space is always kept so that removal never glues words together.
    """
    names = [name.strip() for name in keep_chars.split(",") if name.strip()]
    unknown = [name for name in names if name not in CHAR_CLASSES]
    if unknown:
        raise KorclfError(
            f"normalize_keep_chars: unknown character class(es) {unknown}; choose from {sorted(CHAR_CLASSES)}"
        )
    body = "".join(CHAR_CLASSES[name] for name in names) + " "
    return re.compile(f"[^{body}]")


class TextNormalizer:
    """Callable that normalises a batch of texts.

    Steps, in order: Unicode NFC; removal of characters outside ``keep_chars`` (replaced by a
    space); squeezing of runs of one character longer than ``max_repeat`` (ㅋㅋㅋㅋㅋ → ㅋㅋ; digits
    are never squeezed: 10000원 stays);
    whitespace collapse and strip; optional morpheme analysis (``morphemes`` settings, see
    :mod:`korclf.text.morphemes`).
    """

    def __init__(
        self,
        nfc: bool = True,
        collapse_whitespace: bool = True,
        max_repeat: Optional[int] = 2,
        keep_chars: Optional[str] = None,
        morphemes: Optional[dict] = None,
    ):
        if max_repeat is not None and max_repeat < 1:
            raise KorclfError(f"normalize_max_repeat must be >= 1 or null, got {max_repeat}")
        self.nfc = nfc
        self.collapse_whitespace = collapse_whitespace
        self.max_repeat = max_repeat
        self.keep_chars = keep_chars
        self.morphemes = dict(morphemes) if morphemes else None
        self._drop = _keep_pattern(keep_chars) if keep_chars else None
        # digits are exempt: "10000원" is an amount, not an elongation like ㅋㅋㅋㅋ or !!!!
        self._repeat = re.compile(r"([^\d\n])\1{%d,}" % max_repeat) if max_repeat else None
        self._morpheme_filter = None
        if self.morphemes:
            from .morphemes import MorphemeFilter

            self._morpheme_filter = MorphemeFilter(**self.morphemes)

    def normalize_one(self, text: str) -> str:
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        if self._drop is not None:
            text = self._drop.sub(" ", text)
        if self._repeat is not None:
            text = self._repeat.sub(lambda m: m.group(1) * self.max_repeat, text)
        if self.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        return text

    def __call__(self, texts: Iterable[str]) -> list[str]:
        out = [self.normalize_one(text) for text in texts]
        if self._morpheme_filter is not None:
            out = self._morpheme_filter(out)
        return out

    def to_dict(self) -> dict:
        return {
            "nfc": self.nfc,
            "collapse_whitespace": self.collapse_whitespace,
            "max_repeat": self.max_repeat,
            "keep_chars": self.keep_chars,
            "morphemes": self.morphemes,
        }

    @classmethod
    def from_dict(cls, settings: Optional[dict]) -> Optional["TextNormalizer"]:
        """``None`` (normalisation off) stays ``None``."""
        return cls(**settings) if settings else None
