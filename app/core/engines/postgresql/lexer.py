"""PostgreSQL's SQL as psql's lexer reads it: tokens, and where each statement ends.

Statements are split as psql splits a file (src/fe_utils/psqlscan.l): a `;` ends one except
inside a '...' string (with `''` doubled; in E'...' a backslash escapes too), a "quoted"
name, a $$ or $tag$ dollar-quoted body, a -- or (nested) /* */ comment, parentheses, or the
BEGIN ... END body of CREATE [OR REPLACE] FUNCTION/PROCEDURE. Strings are read with
standard_conforming_strings on, PostgreSQL's default: a backslash in '...' is a character.
A backslash anywhere else starts a psql meta-command, which runs to the end of its line.

The dialect's refusals and the lock-risk preview both read statements through it.
"""
from __future__ import annotations

import re
from typing import NamedTuple


class Token(NamedTuple):
    # space comment string quoted dollar word number param semicolon lparen rparen meta
    # other, or open (a string, name, body or comment that the text never closes)
    kind: str
    text: str

    def is_word(self, *words: str) -> bool:
        """An unquoted word, optionally one of `words` (upper case)."""
        return self.kind == "word" and (not words or self.text.upper() in words)


# --------------------------------------------------------------------------- the lexer

_SPACE = re.compile(r"[ \t\n\r\f]+")
_LINE_COMMENT = re.compile(r"--[^\n\r]*")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9$\x80-\U0010ffff]*")
_DOLLAR_DELIMITER = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$")
_PARAM = re.compile(r"\$[0-9]+")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_META = re.compile(r"\\[^\n\r]*")
# After a string's closing quote, whitespace holding a newline and another quote continue it.
_QUOTE_CONTINUES = re.compile(
    r"(?:[ \t\f]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f]+|--[^\n\r]*[\n\r])*'")
_SINGLE = {";": "semicolon", "(": "lparen", ")": "rparen"}


def tokenize(text: str, *, standard_conforming_strings: bool = True) -> list[Token]:
    """Split `text` into tokens as psql's lexer does; nothing is lost (joined, they are `text`)."""
    tokens, position = [], 0
    while position < len(text):
        kind, end = _next_token(text, position, standard_conforming_strings)
        tokens.append(Token(kind, text[position:end]))
        position = end
    return tokens


def _next_token(text: str, start: int, standard_strings: bool) -> tuple[str, int]:
    """(kind, end) of the token that starts at `start`."""
    char, after = text[start], text[start + 1: start + 2]
    for kind, pattern in (("space", _SPACE), ("comment", _LINE_COMMENT)):
        match = pattern.match(text, start)
        if match:
            return kind, match.end()
    if text.startswith("/*", start):
        return _block_comment(text, start)
    if char == "'":
        return _string(text, start + 1, backslash_escapes=not standard_strings)
    if char in "eE" and after == "'":
        return _string(text, start + 2, backslash_escapes=True)
    if char in "bBxX" and after == "'":
        return _string(text, start + 2, backslash_escapes=False)
    if char in "nN" and after == "'":
        return _string(text, start + 2, backslash_escapes=not standard_strings)
    if char in "uU" and text.startswith("&'", start + 1):
        return _string(text, start + 3, backslash_escapes=False)
    if char in "uU" and text.startswith('&"', start + 1):
        return _quoted_name(text, start + 3)
    if char == '"':
        return _quoted_name(text, start + 1)
    if char == "$":
        return _dollar(text, start)
    if char == "\\":
        return "meta", _META.match(text, start).end()
    for kind, pattern in (("word", _WORD), ("number", _NUMBER)):
        match = pattern.match(text, start)
        if match:
            return kind, match.end()
    return _SINGLE.get(char, "other"), start + 1


def _block_comment(text: str, start: int) -> tuple[str, int]:
    """/* ... */, where another /* nests (unlike the SQL standard, PostgreSQL counts them)."""
    depth, position = 0, start + 2
    while position < len(text):
        if text.startswith("*/", position):
            if depth == 0:
                return "comment", position + 2
            depth, position = depth - 1, position + 2
        elif text.startswith("/*", position):
            depth, position = depth + 1, position + 2
        else:
            position += 1
    return "open", len(text)


def _string(text: str, position: int, *, backslash_escapes: bool) -> tuple[str, int]:
    """A string whose opening quote ends just before `position`."""
    while position < len(text):
        char = text[position]
        if backslash_escapes and char == "\\":
            position += 2
        elif char != "'":
            position += 1
        elif text.startswith("''", position):
            position += 2
        else:
            continued = _QUOTE_CONTINUES.match(text, position + 1)
            if not continued:
                return "string", position + 1
            position = continued.end()
    return "open", len(text)


def _quoted_name(text: str, position: int) -> tuple[str, int]:
    while position < len(text):
        end = text.find('"', position)
        if end < 0:
            break
        if not text.startswith('""', end):
            return "quoted", end + 1
        position = end + 2
    return "open", len(text)


def _dollar(text: str, start: int) -> tuple[str, int]:
    """$tag$ ... $tag$ (the body is taken as it is), or $1, or a lone $."""
    delimiter = _DOLLAR_DELIMITER.match(text, start)
    if delimiter:
        end = text.find(delimiter.group(), delimiter.end())
        return ("dollar", end + len(delimiter.group())) if end >= 0 else ("open", len(text))
    param = _PARAM.match(text, start)
    return ("param", param.end()) if param else ("other", start + 1)


def significant(tokens: list[Token]) -> list[Token]:
    return [token for token in tokens if token.kind not in ("space", "comment")]


# --------------------------------------------------------------------------- statements


class _Ends:
    """psql's rule for a `;` that ends a statement: not inside parentheses, nor inside the
    BEGIN ... END of a CREATE [OR REPLACE] FUNCTION/PROCEDURE (where CASE ... END nests)."""

    _HEADS = ("cf", "cp", "corf", "corp")

    def __init__(self):
        self.parens = self.blocks = 0
        self.heads = ""  # the first letters of CREATE, OR, REPLACE, FUNCTION, PROCEDURE as met
        self.words = 0

    def ends_statement(self, token: Token) -> bool:
        if token.kind == "lparen":
            self.parens += 1
        elif token.kind == "rparen":
            self.parens = max(0, self.parens - 1)
        elif token.kind == "word":
            self._word(token.text.lower())
        elif token.kind == "meta" or (token.kind == "semicolon" and not self.parens and not self.blocks):
            self.__init__()
            return True
        return False

    def _word(self, word: str) -> None:
        if self.words < 4:
            known = word in ("create", "function", "procedure", "or", "replace")
            self.heads += word[0] if known else "-"
        self.words += 1
        if not self.parens and any(self.heads.startswith(head) for head in self._HEADS):
            if word == "begin" or (word == "case" and self.blocks):
                self.blocks += 1
            elif word == "end" and self.blocks:
                self.blocks -= 1


def pieces(tokens: list[Token]) -> list[list[Token]]:
    """The tokens of each statement, the last one possibly unfinished; a statement ends with
    its `;` or is one psql meta-command with what came before it."""
    found, current, ends = [], [], _Ends()
    for token in tokens:
        current.append(token)
        if ends.ends_statement(token):
            found.append(current)
            current = []
    found.append(current)
    return found


def string_value(token: Token) -> str | None:
    """The value of a '...' or E'...' string (None for one whose value needs more reading)."""
    text = token.text
    if text[:1] == "'" and text[-1:] == "'" and not _QUOTE_CONTINUES.search(text):
        return text[1:-1].replace("''", "'")
    if text[:2] in ("E'", "e'") and "\\" not in text:
        return text[2:-1].replace("''", "'")
    return None
