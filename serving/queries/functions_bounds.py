"""Size bounds for DuckDB functions whose work or memory DuckDB neither accounts for nor can interrupt.

Why: a scalar function's output (a string or list) is allocated outside DuckDB's
``memory_limit``, and one call cannot be interrupted. ``repeat('x', 2000000000)`` ran 8 s
past its time limit, ``damerau_levenshtein`` of two 15,000-character strings took 1.8 GB.
Measured on DuckDB 2.0.1, the class and the rule for each member:

- value builders (``repeat``, ``lpad``, ``rpad``, ``replace``, ``regexp_replace``,
  ``bitstring``): each call may build at most ``MAX_BUILT_CHARS`` characters (lists from
  ``repeat``: ``MAX_BUILT_ELEMENTS``); ``replace``/``regexp_replace`` are bounded by their
  worst case (every match replaced, back-references included);
- list builders (``range``, ``generate_series`` as scalars, ``list_resize``,
  ``array_resize``): at most ``MAX_BUILT_ELEMENTS`` elements (the table functions
  ``FROM range(…)`` stream and are not bounded);
- quadratic string distances (``levenshtein``, ``editdist3``, ``damerau_levenshtein``,
  ``jaro_similarity``, ``jaro_winkler_similarity``): ``len(a) * len(b)`` at most
  ``MAX_DISTANCE_CELLS``;
- ``printf``/``format``: the format string must be a literal, with no ``*`` or nested
  width and no width or precision above ``MAX_FORMAT_WIDTH``;
- not bounded, because DuckDB accounts for them or bounds them itself (measured: each ends
  with an error at the limit): ``string_agg``/``list``/``array_agg`` and other aggregates
  (also as window functions), ``bar`` (width <= 1000), ``to_base`` (<= 64),
  ``equi_width_bins`` (<= 1,000,000 bins), regular expressions (RE2: linear time,
  bounded memory), ``sleep_ms`` (interruptible).

How: each call ``f(a, b)`` is rewritten in the checked tree as
``list_transform([{'p0': a, 'p1': b}], lambda g: CASE WHEN <bound exceeded> THEN
error('function_limit: …') ELSE f(g.p0, g.p1) END)[1]``. Each argument is evaluated once
(the check and the call see the same value, also for ``random()`` or bound parameters)
and the tree grows linearly with nesting. The engine answers the error as a 400 with
rule ``function_limit``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from serving.queries.functions import RUNTIME_MARKER, policy
from serving.queries.names import reject, shown

MAX_BUILT_CHARS = 1 << 20  # characters of one built string (1 MiB of ASCII)
MAX_BUILT_ELEMENTS = 100_000  # elements of one built list
MAX_DISTANCE_CELLS = 4_000_000  # len(a) * len(b) of one string-distance call (2,000 x 2,000 characters)
MAX_FORMAT_WIDTH = 1_000  # width or precision in a printf/format literal
RESERVED_PREFIX = "__guard"
_TABLE_POSITION = (exp.Table, exp.From, exp.Join, exp.Lateral)

B, E, C = MAX_BUILT_CHARS, MAX_BUILT_ELEMENTS, MAX_DISTANCE_CELLS
_DISTANCE = f"len({{0}})::DOUBLE * len({{1}}) > {C}"
_SERIES2 = f"{{1}}::DOUBLE - {{0}}::DOUBLE > {E}"
_SERIES3 = (f"coalesce(CASE WHEN try({{0}} + {{2}}) > {{0}} THEN {{1}} > try({{0}} + {E} * {{2}}) "
            f"WHEN try({{0}} + {{2}}) < {{0}} THEN {{1}} < try({{0}} + {E} * {{2}}) END, false)")
# DuckDB name -> (condition over positional arguments {0}, {1}, …, what the limit is)
_BOUNDS: dict[str, tuple[Callable[[int], str], str]] = {
    "repeat": (lambda n: f"len({{0}})::DOUBLE * {{1}} > CASE WHEN typeof({{0}}) LIKE '%]' THEN {E} ELSE {B} END",
               f"{B} characters or {E} list elements"),
    "lpad": (lambda n: f"{{1}} > {B}", f"{B} characters"),
    "rpad": (lambda n: f"{{1}} > {B}", f"{B} characters"),
    "bitstring": (lambda n: f"{{1}} > {8 * B}", f"{8 * B} bits"),
    "replace": (lambda n: f"len({{2}}) > len({{1}}) AND len({{0}}) + len({{0}})::DOUBLE / greatest(len({{1}}), 1) "
                          f"* (len({{2}}) - len({{1}})) > {B}", f"{B} characters in the worst case"),
    "regexp_replace": (lambda n: f"len({{2}}) > 0 AND len({{0}}) + 2 * len({{2}})::DOUBLE * (len({{0}}) + 1) > {B}",
                       f"{B} characters in the worst case"),
    "list_resize": (lambda n: f"{{1}} > {E}", f"{E} elements"),
    "array_resize": (lambda n: f"{{1}} > {E}", f"{E} elements"),
    "range": (lambda n: _SERIES3 if n >= 3 else _SERIES2, f"{E} elements (FROM range(…) streams without this limit)"),
    "generate_series": (lambda n: _SERIES3 if n >= 3 else _SERIES2,
                        f"{E} elements (FROM generate_series(…) streams without this limit)"),
    "levenshtein": (lambda n: _DISTANCE, f"len(a) * len(b) <= {C}"),
    "editdist3": (lambda n: _DISTANCE, f"len(a) * len(b) <= {C}"),
    "damerau_levenshtein": (lambda n: _DISTANCE, f"len(a) * len(b) <= {C}"),
    "jaro_similarity": (lambda n: _DISTANCE, f"len(a) * len(b) <= {C}"),
    "jaro_winkler_similarity": (lambda n: _DISTANCE, f"len(a) * len(b) <= {C}"),
}
_FORMATS = frozenset({"printf", "format"})
_PRINTF_SPEC = re.compile(r"%[-+ #0']*(\*|\d+)?(?:\.(\*|\d+))?")
_FMT_FIELD = re.compile(r"\{[^{}]*\}")


def _call_shape(node: exp.Func) -> tuple[str, list[str], list[exp.Expr]] | None:
    """(DuckDB name, positional argument texts over placeholders ``__guard_pI``, the original arguments).

    The node is printed with each argument replaced by a placeholder, so the name and
    argument order are exactly what DuckDB will see (sqlglot renames some functions and
    adds default arguments); None when it does not print as a plain ``name(…)`` call.
    """
    originals: list[exp.Expr] = []

    def placeholder(value: exp.Expr) -> exp.Expr:
        if isinstance(value, exp.Literal | exp.Boolean | exp.Null):
            return value.copy()  # constants stay in place: sqlglot prints some (regexp flags) only as literals
        originals.append(value)
        return exp.column(f"{RESERVED_PREFIX}_p{len(originals) - 1}")

    args: dict[str, object] = {}
    for key, value in node.args.items():
        if isinstance(value, exp.Expr):
            args[key] = placeholder(value)
        elif isinstance(value, list):
            args[key] = [placeholder(v) if isinstance(v, exp.Expr) else v for v in value]
        else:
            args[key] = value
    try:
        text = type(node)(**args).sql(dialect="duckdb")
        tokens = sqlglot.tokenize(text, read="duckdb")
    except (sqlglot.errors.SqlglotError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if len(tokens) < 3 or tokens[1].token_type != TokenType.L_PAREN or tokens[-1].token_type != TokenType.R_PAREN:
        return None
    name = tokens[0].text.lower()
    positional: list[str] = []
    depth, start = 0, tokens[2].start
    for i, tok in enumerate(tokens[1:], start=1):
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth -= 1
            if depth == 0:
                if i != len(tokens) - 1:
                    return None  # something follows the call: not a plain call
                if text[start:tok.start].strip():
                    positional.append(text[start:tok.start].strip())
        elif tok.token_type == TokenType.COMMA and depth == 1:
            positional.append(text[start:tok.start].strip())
            start = tok.end + 1
    return name, positional, originals


def _check_format(name: str, positional: list[str]) -> None:
    try:
        fmt = sqlglot.parse_one(positional[0], read="duckdb") if positional else None
    except sqlglot.errors.SqlglotError:
        fmt = None
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise reject("function_not_allowed", f"{name}() needs a literal format string, so the guard can bound its output")
    text = fmt.this
    widths: list[str] = []
    if name == "printf":
        for spec in _PRINTF_SPEC.finditer(text):
            widths += [w for w in spec.groups() if w]
    else:
        if re.search(r"\{[^{}]*\{", text.replace("{{", "").replace("}}", "")):
            raise reject("function_not_allowed", "format() widths must be literal numbers, not nested fields")
        for field in _FMT_FIELD.findall(text.replace("{{", "").replace("}}", "")):
            widths += re.findall(r"\d+|\*", field.partition(":")[2])
    if any(w == "*" or int(w) > MAX_FORMAT_WIDTH for w in widths):
        raise reject("function_not_allowed", f"{name}() widths and precisions must be literal numbers up to {MAX_FORMAT_WIDTH}")


def _wrapper(name: str, positional: list[str], originals: list[exp.Expr], serial: int) -> exp.Expr:
    param = f"{RESERVED_PREFIX}_{serial}"
    args = [re.sub(rf"\b{RESERVED_PREFIX}_p(\d+)\b", rf"{param}.p\1", a) for a in positional]
    condition_of, limit = _BOUNDS[name]
    condition = condition_of(len(args)).format(*args)
    message = f"{RUNTIME_MARKER} {name}() would exceed {limit} in one call".replace("'", "''")
    fields = ", ".join(f"'p{i}': {RESERVED_PREFIX}_p{i}" for i in range(len(originals)))
    text = (f"list_transform([{{{fields}}}], lambda {param}: CASE WHEN {condition} THEN error('{message}') "
            f"ELSE {name}({', '.join(args)}) END)[1]")
    wrapper = sqlglot.parse_one(text, read="duckdb")
    for column in list(wrapper.find_all(exp.Column)):
        match = re.fullmatch(rf"{RESERVED_PREFIX}_p(\d+)", column.name) if not column.table else None
        if match:
            column.replace(originals[int(match.group(1))])
    return wrapper


def bound_calls(tree: exp.Expr) -> Counter[str]:
    """Rewrite every call of a size-bounded function in ``tree``; return how many of each were bounded.

    The counts are checked against DuckDB's own parse of the rewritten SQL
    (``functions.check_functions``), so a call this rewrite missed is refused.
    """
    for ident in tree.find_all(exp.Identifier):
        if str(ident.this).lower().startswith(RESERVED_PREFIX):
            raise reject("statement_not_allowed", f"names starting with {RESERVED_PREFIX} are reserved: {shown(ident.this)}")
    for lam in tree.find_all(exp.Lambda):
        lam.set("colon", True)  # DuckDB 2 refuses `x -> …` at bind time; `lambda x: …` is the same function
    bounded = policy().bounded
    done: Counter[str] = Counter()
    for found in list(tree.find_all(exp.Func)):
        node = found
        if isinstance(node.parent, _TABLE_POSITION) and node.arg_key == "this":
            continue  # a table function: checked against the table allow-list
        shape = _call_shape(node)
        if shape is None or shape[0] not in bounded:
            continue
        if isinstance(node.parent, exp.Dot) and node.arg_key == "expression":
            node = _method_as_call(node, shape[0])
            shape = _call_shape(node)
            assert shape is not None
        name, positional, originals = shape
        if name in _FORMATS:
            _check_format(name, positional)
        else:
            node.replace(_wrapper(name, positional, originals, sum(done.values()) + 1))
        done[name] += 1
    return done


def _method_as_call(node: exp.Func, name: str) -> exp.Func:
    """``x.repeat(3)`` (DuckDB's method syntax) as ``repeat(x, 3)``, so the bound sees every argument."""
    dot = node.parent
    if not isinstance(node, exp.Anonymous) or not isinstance(dot, exp.Dot):
        raise reject("function_not_allowed", f"function {name}() must be called as a plain function ({name}(x, …)) "
                                             "so its size can be bounded")
    receiver = dot.this
    if isinstance(receiver, exp.Identifier):
        receiver = exp.Column(this=receiver)
    call = exp.Anonymous(this=node.name, expressions=[receiver, *node.expressions])
    dot.replace(call)
    return call
