"""Word normalisation shared by BM25 and the reader's term matching.

One function so that "protection" in a question meets "protect" in a letter the same
way in retrieval and in answer grounding.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer


def words_set(text: str) -> frozenset[str]:
    """A set of words written as one space-separated string (keeps long lists readable)."""
    return frozenset(text.split())


_WORD = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)

#: Function words that carry no topic. Kept short on purpose: "not", "no", numbers and
#: wh-words matter to questions; wh-words are dropped separately where needed.
STOPWORDS = words_set(
    """a an the and or but if of at by for with about against between into through during
    before after above below to from up down in out on off over under again further
    then once here there all any both each few more most other some such own same so
    than too very can will just should now is are was were be been being have has
    had having do does did doing i me my myself we our ours ourselves you your yours
    yourself yourselves he him his himself she her hers herself it its itself they
    them their theirs themselves this that these those am would could shall may
    might must also as s t d ll m o re ve y what which who whom whose when where why
    how"""
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens, apostrophes normalised."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def terms(text: str) -> list[str]:
    """Stemmed content terms: what BM25 indexes and what grounding compares."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]
