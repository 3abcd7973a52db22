"""A user's question → the terms of a full-text query, safe for FTS5 and tsquery.

Questions are natural language, so terms are OR-ed (BM25 weighs them) rather
than AND-ed (one extra word would then find nothing). Only word characters
survive, so no query syntax typed by a user (quotes, NEAR, column filters,
`&`, `!`) ever reaches the search engine.
"""

from __future__ import annotations

import re

MAX_TERMS = 32
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Common English function words: they match nearly every chunk and only cost time.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves tell please give show s t
""".split())


def query_terms(query: str) -> list[str]:
    seen: dict[str, None] = {}
    words = [w.lower() for w in _WORD.findall(query)]
    for word in words:
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
    if not seen:  # a question made only of stop words still deserves an answer
        for word in words:
            if word.strip("_"):
                seen.setdefault(word, None)
    return list(seen)[:MAX_TERMS]


def fts5_match(terms: list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def tsquery_text(terms: list[str]) -> str:
    return " | ".join(terms)
