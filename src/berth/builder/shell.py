"""Shell-word expansion of Dockerfile arguments (moby/builder/dockerfile/shell/lex.go).

Not a shell: quotes are removed, the escape token escapes the next character,
`$VAR`, `${VAR}`, `${VAR:-word}` and `${VAR:+word}` are replaced from an `env` list of
`KEY=value` strings in which the first match wins (ENV before build args, as the
dispatcher orders them). Nothing is globbed and no command is run.
"""
from __future__ import annotations


class ShellError(ValueError):
    pass


def _lookup(env: list[str], name: str) -> str | None:
    for kv in env:
        k, sep, v = kv.partition("=")
        if sep and k == name:
            return v
    return None


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Lexer:
    """One pass over a word; `words` collects the split result for ProcessWords."""

    def __init__(self, word: str, env: list[str], escape: str) -> None:
        self.s = word
        self.i = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def process(self, split: bool) -> tuple[str, list[str]]:
        """processStopOn(EOF): the expanded string and, when `split`, the words."""
        out: list[str] = []
        words: list[str] = []
        cur: list[str] = []
        in_word = False

        def add(text: str, quoted: bool) -> None:
            nonlocal in_word
            out.append(text)
            for ch in text:
                if split and not quoted and ch in " \t\r\n":
                    if in_word:
                        words.append("".join(cur))
                        cur.clear()
                        in_word = False
                    continue
                cur.append(ch)
                in_word = True
            if quoted:
                in_word = True  # "" is an (empty) word of its own

        while self.i < len(self.s):
            ch = self.peek()
            if ch == "'":
                add(self._single_quote(), True)
            elif ch == '"':
                add(self._double_quote(), True)
            elif ch == "$":
                add(self._dollar(), False)
            else:
                self.next()
                if ch == self.escape:
                    if self.i >= len(self.s):
                        break  # an escape at the end of the word is dropped
                    ch = self.next()
                    add(ch, True)
                    continue
                add(ch, False)
        if in_word:
            words.append("".join(cur))
        return "".join(out), words

    def _single_quote(self) -> str:
        self.next()
        start = self.i
        end = self.s.find("'", start)
        if end < 0:
            raise ShellError("unexpected end of statement while looking for matching single-quote")
        self.i = end + 1
        return self.s[start:end]

    def _double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            ch = self.peek()
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.next()
            if ch == self.escape:
                nxt = self.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()  # only these can be escaped inside double quotes
            out.append(ch)

    def _name(self) -> str:
        start = self.i
        while self.i < len(self.s) and _is_name_char(self.s[self.i]):
            self.i += 1
        return self.s[start:self.i]

    def _stop_on(self, stop: str) -> str:
        """processStopOn('}'): the word of a ${VAR:-word} modifier, itself expanded."""
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise ShellError(f"unexpected end of statement while looking for matching {stop}")
            ch = self.peek()
            if ch == stop:
                self.next()
                return "".join(out)
            if ch == "'":
                out.append(self._single_quote())
            elif ch == '"':
                out.append(self._double_quote())
            elif ch == "$":
                out.append(self._dollar())
            else:
                self.next()
                if ch == self.escape and self.i < len(self.s):
                    ch = self.next()
                out.append(ch)

    def _dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return _lookup(self.env, name) or ""
        self.next()  # the {
        name = self._name()
        ch = self.next()
        if ch == "}":
            return _lookup(self.env, name) or ""
        if ch == ":":
            modifier = self.next()
            word = self._stop_on("}")
            value = _lookup(self.env, name) or ""
            if modifier == "+":
                return word if value else ""
            if modifier == "-":
                return value if value else word
            if modifier == "?":
                if not value:
                    raise ShellError(f"{name}: {word}" if word else f"{name}: parameter null or not set")
                return value
            raise ShellError(f"unsupported modifier ({modifier}) in substitution")
        raise ShellError("missing ':' in substitution")


def process_word(word: str, env: list[str], escape: str = "\\") -> str:
    """ProcessWord: one word in, one word out, quotes removed."""
    return _Lexer(word, env, escape).process(False)[0]


def process_words(word: str, env: list[str], escape: str = "\\") -> list[str]:
    """ProcessWords: as process_word, then split on unquoted whitespace (EXPOSE only)."""
    return _Lexer(word, env, escape).process(True)[1]
