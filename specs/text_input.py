"""Texts as the market takes them: Python strings that UTF-8 can hold.

JSON may escape a lone surrogate (``"\\ud800"``): ``json.loads`` returns it in a ``str``, but UTF-8
cannot encode it, so hashing the text (the embedding caches' keys), a tokenizer or the database
fails on it later, far from the upload. The readers of texts (submissions, search by data, publish
samples, the client) refuse such a text where they read it, naming the line.
"""

from __future__ import annotations


def utf8_problem(text: str) -> str | None:
    """What keeps ``text`` out of UTF-8 (its first lone surrogate, counted from 1); None when it is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start + 1} (not UTF-8 text)"
    return None
