"""One escaping function per output context. Every value that reaches an output passes through the one
for its context, applied by the formatter or template filter — never by the code that makes the value —
so no formatter can forget it and no spec string can change an output's structure:

- terminal (the text format, render's messages): control characters, ANSI escapes and bidirectional
  overrides removed; a line can never start with `::` (GitHub workflow commands in a job log);
- markdown (PR comments, job summaries, report.md): control characters removed, every markdown
  metacharacter backslash-escaped (so no link, image, HTML, mention, heading or table break), and code
  spans fenced with more backticks than the value holds;
- GitHub annotation messages and properties (`%`, CR, LF and, in properties, `:` and `,`);
- YAML scalars, shell words, Kubernetes args (`$$(`), PromQL strings and HTML live with their
  renderers (planner.render: yaml_scalar, shlex, Launch.container_command, promql_string; Jinja
  autoescape for HTML).
"""

from __future__ import annotations

import re

# C0 and C1 controls (tab kept as a space), DEL, and Unicode bidi/line-separator characters that reorder or
# break displayed text (U+2028/2029 line and paragraph separators, U+202A-202E embeddings/overrides,
# U+2066-2069 isolates, U+200E/200F marks)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.")
_MD_META = re.compile(r"([\\`*_\[\]<>#!|~@&])")


def terminal(value) -> str:
    """One line of text safe to print to a terminal or a CI log."""
    s = _ANSI.sub("", str(value))
    return _CONTROL.sub(" ", s)


def terminal_lines(text: str) -> str:
    """A whole text report: no line may start with `::` (a GitHub workflow command such as ::stop-commands::)."""
    return "\n".join((" " + ln) if ln.startswith("::") else ln for ln in text.split("\n"))


def markdown(value) -> str:
    """Text for a markdown paragraph or table cell, inert: no markup of any kind survives."""
    s = _MD_META.sub(r"\\\1", terminal(value))
    # GitHub autolinks bare URLs and www. hosts: break the pattern without changing the rendered text
    return s.replace("://", ":\\/\\/").replace("www.", "www\\.")


def markdown_code(value) -> str:
    """A markdown code span holding the value verbatim (for paths and spec values); a table-safe `|`."""
    s = terminal(value)
    run = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (run + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s else ""
    return f"{fence}{pad}{s.replace('|', chr(92) + '|')}{pad}{fence}"


def markdown_fence(text: str, info: str = "") -> str:
    """A fenced code block that the text cannot close: the fence is longer than any backtick run in it."""
    run = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, run + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def github_message(value) -> str:
    s = _ANSI.sub("", str(value))
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return re.sub("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]", " ", s)


def github_property(value) -> str:
    return github_message(value).replace(":", "%3A").replace(",", "%2C")
