"""Pure-Python approximation of pycocoevalcap's PTB tokenization (used when Java is missing).

pycocoevalcap runs Stanford CoreNLP 3.4.1 ``PTBTokenizer -preserveLines -lowerCase`` and then
drops the tokens in :data:`PUNCTUATIONS`. Because ``-lowerCase`` also lower-cases the bracket
tokens, ``-lrb-``/``-rrb-``/``-lsb-``/... are *kept* (the list holds ``-LRB-``, upper case):
this approximation reproduces that.

What it does, per whitespace-separated chunk: URLs are kept whole; brackets, ``; & * = ~ ^ |
\\``, runs of ``-`` of length >= 2, and ``,``/``:`` not between digits split off; leading
quotes, ``$``, and ``#``/``@`` before digits split off; trailing quotes, ``?!`` runs, ``, ; :``,
``%``, dot runs and a final period split off, unless the chunk is an abbreviation (single letters
with periods like ``u.s.``/``p.m.``, or a known list like ``mr. st. etc. ft.``; ``no.`` only
before a number); contractions split as PTB (``don't`` -> ``do n't``, ``can't`` -> ``ca n't``,
``cannot`` -> ``can not``, ``gonna`` -> ``gon na``, ``it's`` -> ``it 's``, ``dogs'`` ->
``dogs '``); curly quotes and dashes are normalised first. Then everything is lower-cased and the
punctuation tokens are dropped.

Known differences from the Java tokenizer (rare in captions): emoticons (``:)`` is one token in
Java), number-unit splits (Java: ``3.5m`` -> ``3.5 m``), ``+`` handling, hyphen splits after a
possessive (``bird's-eye``), ``y'all``-style apostrophes, non-ASCII text (Java 17 decodes with the
platform charset), and exotic abbreviations. Tests pin agreement on a fixed caption set.
"""

from __future__ import annotations

import re
from typing import List

__all__ = ["PUNCTUATIONS", "ptb_tokenize_text"]

# pycocoevalcap/tokenizer/ptbtokenizer.py
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_NORMALISE = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'",
                            "\u201a": "'", "\u2014": "--", "\u2013": "--", "\u2026": "..."})
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S+$", re.IGNORECASE)
_INFIX = re.compile(r"(-{2,}|[;&*=~^|\\()\[\]{}%]|(?<!\d),|,(?!\d)|(?<!\d):|:(?!\d)|(?<=\w)'n'(?=\w))")
_EMOTICON = re.compile(r"^[:;=][-o]?[()DPdpoO/\\|*\]\[]$")
_ABBREV_LETTERS = re.compile(r"^[a-z](?:\.[a-z])*\.$", re.IGNORECASE)
_ABBREVS = frozenset(
    """mr mrs ms dr st mt jr sr prof vs etc inc co corp ltd jan feb mar apr jun jul aug sep sept
    oct nov dec ft fig gen gov sen rep capt col lt sgt ave blvd rd ph.d mss messrs""".split()
)
_LEADING_APOS_WORDS = re.compile(r"^'(?:n'|em|cause|\d\d?s?)$", re.IGNORECASE)
_SPECIAL = {
    "cannot": ["can", "not"], "gonna": ["gon", "na"], "wanna": ["wan", "na"], "gotta": ["got", "ta"],
    "lemme": ["lem", "me"], "gimme": ["gim", "me"], "'tis": ["'t", "is"], "'twas": ["'t", "was"],
}
_CONTRACTION = re.compile(r"^(.*[^'])(n't|'s|'m|'d|'ll|'re|'ve)$", re.IGNORECASE)


def _is_abbrev(word: str, next_chunk: str) -> bool:
    low = word.lower()
    if _ABBREV_LETTERS.match(low) or low[:-1] in _ABBREVS:
        return True
    return low == "no." and next_chunk[:1].isdigit()


def _split_word(word: str) -> List[str]:
    """Contractions of a chunk without surrounding punctuation."""
    special = _SPECIAL.get(word.lower())
    if special:
        n = len(special[0])
        return [word[:n], word[n:]]
    out: List[str] = []
    while True:
        m = _CONTRACTION.match(word)
        if not m or _LEADING_APOS_WORDS.match(word):
            break
        out.insert(0, m.group(2))
        word = m.group(1)
    return ([word] if word else []) + out


def _split_chunk(chunk: str, next_chunk: str) -> List[str]:
    """Peel leading and trailing punctuation off one infix-free chunk."""
    head: List[str] = []
    tail: List[str] = []
    while chunk:
        if chunk[0] == '"' or chunk.startswith("``"):
            head.append("``")
            chunk = chunk[2:] if chunk.startswith("``") else chunk[1:]
        elif chunk[0] == "`":
            head.append("`")
            chunk = chunk[1:]
        elif chunk[0] == "'" and len(chunk) > 1 and not _LEADING_APOS_WORDS.match(chunk.rstrip(".,;:?!\"")) \
                and chunk.lower().rstrip(".,;:?!\"") not in _SPECIAL:
            head.append("`")
            chunk = chunk[1:]
        elif chunk[0] == "$" or (chunk[0] in "#@" and chunk[1:2].isdigit()):
            head.append(chunk[0])
            chunk = chunk[1:]
        else:
            break
    while chunk:
        m = re.search(r"[?!]+$", chunk)
        if chunk.endswith('"') or chunk.endswith("''"):
            tail.insert(0, "''")
            chunk = chunk[:-2] if chunk.endswith("''") else chunk[:-1]
        elif chunk.endswith("'") and len(chunk) > 1 and not _LEADING_APOS_WORDS.match(chunk):
            tail.insert(0, "'")
            chunk = chunk[:-1]
        elif m:
            tail.insert(0, m.group(0))
            chunk = chunk[: m.start()]
        elif chunk[-1] in ",;:%`/" and len(chunk) > 1:
            tail.insert(0, chunk[-1])
            chunk = chunk[:-1]
        elif chunk.endswith(".."):
            run = len(chunk) - len(chunk.rstrip("."))
            tail.insert(0, "..." if run >= 3 else ". .")
            chunk = chunk[:-run]
            if chunk and _is_abbrev(chunk + ".", next_chunk):  # "a.m..." -> "a.m." "..."
                chunk += "."
                break
        elif chunk.endswith(".") and len(chunk) > 1 and not _is_abbrev(chunk, next_chunk):
            tail.insert(0, ".")
            chunk = chunk[:-1]
        else:
            break
    body = _split_word(chunk) if chunk else []
    return head + body + [t for piece in tail for t in piece.split()]


def _tokens(text: str) -> List[str]:
    text = text.translate(_NORMALISE)
    chunks = text.split()
    tokens: List[str] = []
    for i, chunk in enumerate(chunks):
        next_chunk = chunks[i + 1] if i + 1 < len(chunks) else ""
        if _URL.match(chunk):
            tokens.append(chunk)
            continue
        if _EMOTICON.match(chunk):  # Java keeps ":)" as one token ":-rrb-"
            tokens.append(re.sub(r"[()\[\]]", lambda m: _BRACKETS[m.group(0)], chunk))
            continue
        pieces = [p for p in _INFIX.split(chunk) if p]
        for j, piece in enumerate(pieces):
            if piece in _BRACKETS:
                tokens.append(_BRACKETS[piece])
            elif _INFIX.fullmatch(piece):
                tokens.append("--" if piece.startswith("--") else piece)
            else:
                following = pieces[j + 1] if j + 1 < len(pieces) else next_chunk
                tokens.extend(_split_chunk(piece, following))
    return tokens


def ptb_tokenize_text(text: str) -> str:
    """Tokenise one caption like pycocoevalcap's PTBTokenizer: lower-case, space-joined tokens,
    punctuation tokens dropped."""
    return " ".join(t for t in (tok.lower() for tok in _tokens(text)) if t not in PUNCTUATIONS)
