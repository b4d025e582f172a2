"""Just enough PromQL to find which metrics an expression reads, and how it aggregates them.

Not a parser: a tokenizer plus the three rules that tell a metric name from the other
identifiers. An identifier is a metric name unless it is a keyword, a function (followed by
`(`), inside a label matcher `{...}`, a label list after `by`/`without`/`on`/`ignoring`/
`group_left`/`group_right`, or a range or offset. Grafana's variables (`$__rate_interval`,
`$service`) are taken as opaque words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{?[A-Za-z_][A-Za-z0-9_:]*\}?)
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    pass


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise PromQLError(f"cannot read {expr[pos : pos + 20]!r} at {pos} in {expr!r}")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


@dataclass(frozen=True)
class MetricUse:
    name: str
    aggregation: str  # the innermost aggregation around it ("" when none)


def metric_uses(expr: str) -> list[MetricUse]:
    """Each metric the expression selects, with the aggregation operator nearest around it."""
    toks = tokens(expr)
    uses: list[MetricUse] = []
    # One entry per open "(": the aggregation it belongs to ("" for any other parenthesis).
    parens: list[str] = []
    braces = 0
    pending_aggregation = ""  # `sum by (x) (`: the aggregation waits for its argument's "("
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "op" and text == "{":
            braces += 1
        elif kind == "op" and text == "}":
            braces -= 1
        elif braces:
            pass  # label matchers
        elif kind == "ident" and text in LABEL_LISTS and nxt == "(":
            depth, i = 0, i + 1  # skip the label list
            while i < len(toks):
                depth += {"(": 1, ")": -1}.get(toks[i][1], 0)
                if depth == 0:
                    break
                i += 1
        elif kind == "ident" and text in AGGREGATIONS and nxt in ("(", "by", "without"):
            pending_aggregation = text
            if nxt == "(":
                parens.append(text)
                pending_aggregation = ""
                i += 1
        elif kind == "op" and text == "(":
            parens.append(pending_aggregation)
            pending_aggregation = ""
        elif kind == "op" and text == ")":
            if not parens:
                raise PromQLError(f"unbalanced ')' in {expr!r}")
            parens.pop()
        elif kind == "ident" and text not in KEYWORDS and nxt != "(":
            enclosing = next((a for a in reversed(parens) if a), "")
            uses.append(MetricUse(text, enclosing))
        elif kind == "ident" and nxt == "(" and text not in KEYWORDS:
            parens.append("")  # a function call
            i += 1
        i += 1
    if parens or braces:
        raise PromQLError(f"unbalanced brackets in {expr!r}")
    return uses


def metric_names(expr: str) -> set[str]:
    return {u.name for u in metric_uses(expr)}
