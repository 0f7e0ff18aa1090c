"""The Dockerfile parser, instruction checks and shell-word expansion."""
from __future__ import annotations

import pytest

from berth.builder import instructions
from berth.builder.parser import ParseError, parse, parse_words
from berth.builder.shell import ShellError, process_word, process_words

ENV = ["A=a", "EMPTY=", "SP=x y"]


@pytest.mark.parametrize("word,want", [
    ("$A", "a"), ("${A}", "a"), ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"), ("${A:-d}", "a"),
    ("${A:+set}", "set"), ("${NOPE:+set}", ""), ("'$A'", "$A"), ('"$A b"', "a b"), ("\\$A", "$A"),
    ('"\\$A"', "$A"), ("a$", "a$"), ("x${A}y", "xay"), ('"q\\"q"', 'q"q'), ("$NOPE", ""),
])
def test_process_word(word: str, want: str) -> None:
    assert process_word(word, ENV) == want


def test_process_word_errors_and_words() -> None:
    with pytest.raises(ShellError):
        process_word("'open", ENV)
    with pytest.raises(ShellError):
        process_word("${A:%x}", ENV)
    assert process_words("$SP 'c d'", ENV) == ["x", "y", "c d"]
    assert process_word("`$A", ENV, "`") == "$A"


def test_parse_lines_comments_continuations() -> None:
    r = parse("# comment\nFROM busybox AS base\nenv A=b \\\n  # inside\n    C=\"d e\"\n\nRUN [\"echo\", \"x\"]\n"
              "CMD echo hi\nCOPY --chown=1:1 a b /c/\n")
    values = [n.value for n in r.children]
    assert values == ["from", "env", "run", "cmd", "copy"]
    env = r.children[1]
    assert env.original == 'env A=b     C="d e"'
    assert env.args == ["A", "b", "C", '"d e"']
    assert r.children[2].json and r.children[2].args == ["echo", "x"]
    assert not r.children[3].json and r.children[3].args == ["echo hi"]
    assert r.children[4].flags == ["--chown=1:1"] and r.children[4].args == ["a", "b", "/c/"]


def test_escape_directive_and_errors() -> None:
    r = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
    assert r.escape == "`" and r.children[1].args == ["echo a   b"]
    with pytest.raises(ParseError, match="invalid ESCAPE"):
        parse("# escape=x\nFROM busybox\n")
    with pytest.raises(ParseError, match="ENV must have two arguments"):
        parse("FROM busybox\nENV a\n")
    with pytest.raises(ParseError, match="file with no instructions"):
        parse("# only a comment\n")


def test_parse_words_keeps_quotes() -> None:
    assert parse_words('a="b c" d=e', "\\") == ['a="b c"', "d=e"]


def test_instruction_checks() -> None:
    stages, meta = instructions.parse(parse("ARG V=1\nFROM busybox AS One\nRUN x\nfrom scratch\n").children)
    assert [m.args for m in meta] == [["V=1"]]
    assert [s.name for s in stages] == ["one", ""]
    assert instructions.has_stage(stages, "ONE") == 0
    with pytest.raises(instructions.InstructionError, match="line 2: unknown instruction: FOO"):
        instructions.parse(parse("FROM busybox\nfoo bar\n").children)
    with pytest.raises(instructions.InstructionError, match="no build stage in current context"):
        instructions.parse(parse("ENV a=b\nFROM busybox\n").children)
    with pytest.raises(instructions.InstructionError, match="FROM requires either one or three arguments"):
        instructions.parse(parse("FROM a b\n").children)
    with pytest.raises(instructions.InstructionError, match="Unknown flag: nope"):
        instructions.parse(parse("FROM busybox\nCOPY --nope=1 a b\n").children)
    with pytest.raises(instructions.InstructionError, match="SHELL requires the arguments to be in JSON form"):
        instructions.parse(parse("FROM busybox\nSHELL sh -c\n").children)
