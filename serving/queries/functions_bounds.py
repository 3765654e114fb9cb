"""Size bounds for DuckDB functions whose work or memory DuckDB neither accounts for nor can interrupt.

Why: a scalar function's output (a string or list) is allocated outside DuckDB's
``memory_limit``, and one call cannot be interrupted. ``repeat('x', 2000000000)`` ran 8 s
past its time limit, ``damerau_levenshtein`` of two 15,000-character strings took 1.8 GB.
Measured on DuckDB 2.0.1, the class and the rule for each member:

- value builders (``repeat``, ``lpad``, ``rpad``, ``replace``, ``regexp_replace``,
  ``bitstring``): each call may build at most ``MAX_BUILT_CHARS`` characters (``repeat`` of
  a blob or list: of its text); ``replace``/``regexp_replace`` are bounded by their worst
  case (every match replaced, back-references included);
- list builders (``range``, ``generate_series`` as scalars, ``list_resize``,
  ``array_resize``): at most ``MAX_BUILT_ELEMENTS`` elements (the table functions
  ``FROM range(…)`` stream and are not bounded);
- quadratic string distances (``levenshtein``, ``editdist3``, ``damerau_levenshtein``,
  ``jaro_similarity``, ``jaro_winkler_similarity``): ``len(a) * len(b)`` at most a
  per-function budget, small enough that a whole 2,048-row chunk of calls (DuckDB checks
  for interrupts only between chunks) stays well under a second;
- concatenation (``||``, ``concat``, ``concat_ws``, ``list_concat`` and aliases): the output
  is the sum of the inputs, harmless once, but doubling when repeated (a ``||`` chain over
  a CTE column, a ``list_reduce`` accumulator, a recursive CTE; measured: 1.3 GB and 1.5 s
  past the time limit): at most ``MAX_CONCAT_CHARS`` of text per call;
- ``printf``/``format``: the format string must be a literal, with no ``*`` or nested
  width and no width or precision above ``MAX_FORMAT_WIDTH``;
- not bounded, because DuckDB accounts for them or bounds them itself (measured: each ends
  with an error at the limit): ``string_agg``/``list``/``array_agg`` and other aggregates
  (also as window functions), ``bar`` (width <= 1000), ``to_base`` (<= 64),
  ``equi_width_bins`` (<= 1,000,000 bins), regular expressions (RE2: linear time,
  bounded memory), ``sleep_ms`` (interruptible).

Inside a lambda (``list_transform(l, lambda x: repeat('*', x))``) the call runs once per
list element, so the bounds shrink by ``LAMBDA_DIVISOR`` per lambda level.

How: each call ``f(a, b)`` in the checked tree becomes, in the SQL that runs,
``f([a][CASE WHEN <bound exceeded> THEN CAST('function_limit: …' AS INTEGER) ELSE 1 END], b)``:
the first argument, or a conversion error naming the bound, raised before anything is
built and before DuckDB could constant-fold the call (see ``_template``). Arguments that
are volatile (``random()``), parameters, subqueries or other bounded calls are evaluated
once, through ``list_transform([{'p0': a, 'p1': b}], lambda g: f(<gated g.p0>, g.p1))[1]``,
so the check and the call see the same value and the SQL grows linearly with nesting;
equal calls print equally (``GROUP BY f(a)`` still matches ``SELECT f(a)``). The engine
answers the error as a 400 with rule ``function_limit``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from serving.queries.functions import RUNTIME_MARKER, policy
from serving.tables.names import reject, shown

MAX_BUILT_CHARS = 1 << 20  # characters of one built string (1 MiB of ASCII)
MAX_BUILT_ELEMENTS = 100_000  # elements of one built list
# len(a) * len(b) of one string-distance call. A call cannot be interrupted and DuckDB evaluates 2,048 rows
# at a time, so the budget is per call such that a full chunk stays well under a second (measured: 2,048
# levenshtein calls of 300 x 300 characters take 0.47 s, damerau_levenshtein 1.6 s, jaro 0.01 s).
MAX_DISTANCE_CELLS = 100_000  # levenshtein, editdist3 (about 316 x 316 characters)
MAX_DAMERAU_CELLS = 25_000  # damerau_levenshtein: ~3.5 times slower, and its memory grows with the product
MAX_JARO_CELLS = 4_000_000  # jaro(_winkler)_similarity: linear in practice, bounded for the odd case
MAX_FORMAT_WIDTH = 1_000  # width or precision in a printf/format literal
MAX_CONCAT_CHARS = 16 << 20  # characters (as text) of one concatenation's output
RESERVED_PREFIX = "__guard"
_TABLE_POSITION = (exp.Table, exp.From, exp.Join, exp.Lateral)

LAMBDA_DIVISOR = 1_000  # inside a lambda the bounds shrink this much per level: the lambda runs once per element
_DISTANCE = "len({0})::DOUBLE * len({1}) > {%s}"
_SERIES2 = "{1}::DOUBLE - {0}::DOUBLE > {E}"
_SERIES3 = ("coalesce(CASE WHEN try({0} + {2}) > {0} THEN {1} > try({0} + {E} * {2}) "
            "WHEN try({0} + {2}) < {0} THEN {1} < try({0} + {E} * {2}) END, false)")
_CELLS = "len(a) * len(b) <= {%s}"


def _sum_of_sizes(n: int, first: int = 0) -> str:
    # as text: exact for strings (the cast is free), and defined for every type || and concat accept;
    # a NULL counts 0, because concat() skips NULLs (a NULL sum would skip the check); a flat list_sum,
    # not a + chain, so a long || chain does not nest the check as deep as the chain
    terms = ", ".join(f"coalesce(strlen({{{i}}}::VARCHAR), 0)" for i in range(first, n))
    return f"coalesce(list_sum([{terms}]), 0)" if terms else "0"


_CONCAT = "{K} characters"
# DuckDB name -> (condition over positional arguments {0}, {1}, … given their count, what the limit is);
# {B}, {E}, {C}/{D}/{J}, {K} are the character, element, cell and concatenation bounds where the call is.
_BOUNDS: dict[str, tuple[Callable[[int], str], str]] = {
    # sized as text: exact for strings, defined for blobs and lists (a list's text is longer than its length)
    "repeat": (lambda n: "coalesce(strlen({0}::VARCHAR), 0)::DOUBLE * {1} > {B}", "{B} characters (as text)"),
    "lpad": (lambda n: "{1} > {B}", "{B} characters"),
    "rpad": (lambda n: "{1} > {B}", "{B} characters"),
    "bitstring": (lambda n: "{1} > 8 * {B}", "8 * {B} bits"),
    "replace": (lambda n: "len({2}) > len({1}) AND len({0}) + len({0})::DOUBLE / greatest(len({1}), 1) "
                          "* (len({2}) - len({1})) > {B}", "{B} characters in the worst case"),
    "regexp_replace": (lambda n: "len({2}) > 0 AND len({0}) + 2 * len({2})::DOUBLE * (len({0}) + 1) > {B}",
                       "{B} characters in the worst case"),
    "list_resize": (lambda n: "{1} > {E}", "{E} elements"),
    "array_resize": (lambda n: "{1} > {E}", "{E} elements"),
    "range": (lambda n: _SERIES3 if n >= 3 else _SERIES2, "{E} elements (FROM range(…) streams without this limit)"),
    "generate_series": (lambda n: _SERIES3 if n >= 3 else _SERIES2,
                        "{E} elements (FROM generate_series(…) streams without this limit)"),
    "levenshtein": (lambda n: _DISTANCE % "C", _CELLS % "C"),
    "editdist3": (lambda n: _DISTANCE % "C", _CELLS % "C"),
    "damerau_levenshtein": (lambda n: _DISTANCE % "D", _CELLS % "D"),
    "jaro_similarity": (lambda n: _DISTANCE % "J", _CELLS % "J"),
    "jaro_winkler_similarity": (lambda n: _DISTANCE % "J", _CELLS % "J"),
    "||": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "concat": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "list_concat": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "list_cat": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "array_concat": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "array_cat": (lambda n: _sum_of_sizes(n) + " > {K}", _CONCAT),
    "concat_ws": (lambda n: f"coalesce(strlen({{0}}::VARCHAR), 0) * {max(n - 2, 0)} + " + _sum_of_sizes(n, 1) + " > {K}",
                  _CONCAT),
}
_OPERATORS: dict[str, Callable[[list[str]], str]] = {"||": lambda args: "(" + " || ".join(args) + ")"}
_FORMATS = frozenset({"printf", "format"})
_LITERAL_ONLY: dict[type, tuple[str, ...]] = {exp.RegexpReplace: ("modifiers",)}
_PRINTF_SPEC = re.compile(r"%[-+ #0']*(\*|\d+)?(?:\.(\*|\d+))?")
_FMT_FIELD = re.compile(r"\{[^{}]*\}")


def _call_shape(node: exp.Expr) -> tuple[str, list[str], list[exp.Expr]] | None:
    """(DuckDB name, positional argument texts over placeholders ``__guard_pI``, the original arguments).

    The node is printed with each argument replaced by a placeholder, so the name and
    argument order are exactly what DuckDB will see (sqlglot renames some functions and
    adds default arguments); None when it does not print as a plain ``name(…)`` call.
    """
    originals: list[exp.Expr] = []
    if isinstance(node, exp.DPipe):  # a whole chain a || b || c at once: one wrapper, not one per operator
        operand: exp.Expr = node
        while isinstance(operand, exp.DPipe):
            originals.append(operand.expression)
            operand = operand.this
        originals.append(operand)
        originals.reverse()
        return "||", [f"{RESERVED_PREFIX}_p{i}" for i in range(len(originals))], originals

    def placeholder(value: exp.Expr) -> exp.Expr:
        originals.append(value)
        return exp.column(f"{RESERVED_PREFIX}_p{len(originals) - 1}")

    args: dict[str, object] = {}
    for key, value in node.args.items():
        if key in _LITERAL_ONLY.get(type(node), ()) and isinstance(value, exp.Literal):
            args[key] = value.copy()  # sqlglot prints regexp flags only as literals
        elif isinstance(value, exp.Expr):
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


def _check_format(name: str, positional: list[str], originals: list[exp.Expr]) -> None:
    first = re.fullmatch(rf"{RESERVED_PREFIX}_p(\d+)", positional[0]) if positional else None
    fmt = originals[int(first.group(1))] if first else None
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


def bounds_at(depth: int) -> dict[str, int]:
    """The bounds for a call inside ``depth`` nested lambdas (each runs once per list element)."""
    scale = LAMBDA_DIVISOR ** depth
    return {"B": MAX_BUILT_CHARS // scale, "E": MAX_BUILT_ELEMENTS // scale, "C": MAX_DISTANCE_CELLS // scale,
            "D": MAX_DAMERAU_CELLS // scale, "J": MAX_JARO_CELLS // scale, "K": MAX_CONCAT_CHARS // scale}


_TEMPLATE_PARAM = f"{RESERVED_PREFIX}_lambda"
MAX_BOUNDED_CALLS = 256  # per query: each wrapper adds ~400 characters for DuckDB to parse


MAX_DIRECT_ARGUMENT_CHARS = 500  # longer arguments are not repeated in the check: they go through a lambda


@functools.lru_cache(maxsize=512)
def _template(name: str, positional: tuple[str, ...], fields: int, depth: int, direct: bool) -> str:
    """The bounded call's text for one call shape, over ``__guard_pI`` (the arguments).

    The check gates the call's first argument: ``[a][CASE WHEN <exceeded> THEN
    CAST('function_limit: …' AS INTEGER) ELSE 1 END]`` is ``a`` or a conversion error that
    names the bound. Unlike ``error()`` it is not volatile, so the call may still stand in
    PARTITION BY, be referenced by a later alias, or match its GROUP BY twin; and because
    the check is inside an argument, DuckDB cannot constant-fold the call before it.

    ``direct``: the check repeats the arguments (simple, deterministic ones). Otherwise they
    are evaluated once, into a struct that a one-element ``list_transform`` lambda reads, so
    a volatile argument (``random()``) has one value for the check and the call, and nested
    bounded calls do not double the SQL per level.
    """
    ref = (lambda i: f"{RESERVED_PREFIX}_p{i}") if direct else (lambda i: f"{_TEMPLATE_PARAM}.p{i}")
    args = [re.sub(rf"\b{RESERVED_PREFIX}_p(\d+)\b", lambda m: ref(int(m.group(1))), a) for a in positional]
    condition_of, limit = _BOUNDS[name]
    bounds = bounds_at(depth)
    condition = condition_of(len(args)).format(*args, **bounds)
    where = " inside a lambda" if depth else ""
    label = f"the {name} operator" if name in _OPERATORS else f"{name}()"
    message = f"{RUNTIME_MARKER} {label} would exceed {limit.format(**bounds)} in one call{where}".replace("'", "''")
    # the first argument is gated: DuckDB evaluates it first, before anything is built (in a || chain too)
    gated = [f"[{args[0]}][CASE WHEN {condition} THEN CAST('{message}' AS INTEGER) ELSE 1 END]", *args[1:]]
    call = _OPERATORS[name](gated) if name in _OPERATORS else f"{name}({', '.join(gated)})"
    if direct:
        return call
    struct = ", ".join(f"'p{i}': {RESERVED_PREFIX}_p{i}" for i in range(fields))
    return f"list_transform([{{{struct}}}], lambda {_TEMPLATE_PARAM}: {call})[1]"


@functools.cache
def _volatile() -> frozenset[str]:
    """DuckDB's volatile functions (random(), uuid() …): arguments using them are not repeated."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("SELECT DISTINCT function_name FROM duckdb_functions() WHERE stability = 'VOLATILE'").fetchall()
    finally:
        con.close()
    return frozenset(str(r[0]) for r in rows)


def _repeatable(originals: list[exp.Expr], bounded: frozenset[str]) -> bool:
    """Whether the arguments may be evaluated twice (for the check and the call) with the same result, cheaply."""
    if sum(len(o.sql(dialect="duckdb")) for o in originals) > MAX_DIRECT_ARGUMENT_CHARS:
        return False
    volatile = _volatile()
    for original in originals:
        for node in original.walk():
            if isinstance(node, exp.Query | exp.Subquery | exp.Lambda | exp.Placeholder | exp.Parameter):
                return False  # also parameters: a repeated ? would be a new parameter
            if isinstance(node, exp.Func | exp.DPipe):
                shape = _call_shape(node)
                name = shape[0] if shape else ""
                if name in volatile or name in bounded or isinstance(node, exp.Rand | exp.Uuid):
                    return False
    return True


class BoundCalls:
    """The calls ``bound_calls`` took out of a tree, and how to print them back as bounded SQL.

    Why text and not tree: building and printing ~100 sqlglot nodes per wrapper made a
    query with a few hundred calls take seconds to check. Each bounded call is replaced
    in the tree by a placeholder column with a per-check random name; ``expand`` swaps
    every placeholder in the printed SQL for its wrapper text, with the call's arguments
    printed by sqlglot, and refuses the result unless each placeholder appears exactly once
    (so no string in the query can stand in for one).
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.nonce = secrets.token_hex(6)
        self.pieces: list[tuple[str, exp.Tuple, bool]] = []
        self._pattern = re.compile(rf'"?{RESERVED_PREFIX}_w{self.nonce}_(\d+)"?')

    def placeholder(self, template: str, originals: list[exp.Expr], direct: bool) -> exp.Expr:
        # the arguments move under a holder node, so an argument that is itself a bounded call (taken out
        # later) is replaced there by its own placeholder
        self.pieces.append((template, exp.Tuple(expressions=originals), direct))
        return exp.column(f"{RESERVED_PREFIX}_w{self.nonce}_{len(self.pieces) - 1}")

    def expand(self, text: str) -> str:
        used: Counter[int] = Counter()

        def piece(match: re.Match[str]) -> str:
            index = int(match.group(1))
            used[index] += 1
            if index >= len(self.pieces) or used[index] > 1:
                raise reject("parse_error", "the query could not be bounded")
            template, holder, direct = self.pieces[index]
            args = [self._pattern.sub(piece, o.sql(dialect="duckdb", comments=False)) for o in holder.expressions]
            if direct:
                args = [f"({a})" for a in args]
            return re.sub(rf"\b{RESERVED_PREFIX}_p(\d+)\b", lambda m: args[int(m.group(1))], template)

        out = self._pattern.sub(piece, text)
        if sorted(used) != list(range(len(self.pieces))):
            raise reject("parse_error", "the query could not be bounded")
        return out


def bound_calls(tree: exp.Expr) -> BoundCalls:
    """Take every call of a size-bounded function out of ``tree``; print the result with ``expand``.

    ``counts`` (bounded calls per function) is checked against DuckDB's own parse of the
    expanded SQL (``functions.check_functions``), so a call this rewrite missed is refused.
    """
    for ident in tree.find_all(exp.Identifier):
        if str(ident.this).lower().startswith(RESERVED_PREFIX):
            raise reject("statement_not_allowed", f"names starting with {RESERVED_PREFIX} are reserved: {shown(ident.this)}")
    for lam in tree.find_all(exp.Lambda):
        lam.set("colon", True)  # DuckDB 2 refuses `x -> …` at bind time; `lambda x: …` is the same function
    bounded = policy().bounded
    out = BoundCalls()
    calls = list(tree.find_all(exp.Func, exp.DPipe))
    # lambda depth before any call is taken out (a taken-out call's arguments lose their ancestors)
    depths = {id(n): sum(1 for a in _ancestors(n) if isinstance(a, exp.Lambda)) for n in calls}
    for found in calls:
        node = found
        if isinstance(node.parent, _TABLE_POSITION) and node.arg_key == "this":
            continue  # a table function: checked against the table allow-list
        if isinstance(node, exp.DPipe) and isinstance(node.parent, exp.DPipe) and node.arg_key == "this":
            continue  # part of a chain, bounded with its top
        shape = _call_shape(node)
        if shape is None or shape[0] not in bounded:
            continue
        if isinstance(node.parent, exp.Dot) and node.arg_key == "expression":
            node = _method_as_call(node, shape[0])
            shape = _call_shape(node)
            assert shape is not None
        name, positional, originals = shape
        if not positional:
            out.counts[name] += 1  # nothing to build from: list_cat() and the like stay as they are
            continue
        if name in _FORMATS:
            _check_format(name, positional, originals)
        else:
            if len(out.pieces) >= MAX_BOUNDED_CALLS:
                raise reject("function_not_allowed", f"a query may make at most {MAX_BOUNDED_CALLS} calls of "
                                                     "size-bounded functions (repeat, lpad, range, levenshtein …)")
            # the lambda's name comes from the call's text, so equal calls (in SELECT and GROUP BY) stay equal
            key = hashlib.sha256(node.sql(dialect="duckdb").encode("utf-8", "surrogatepass")).hexdigest()[:12]
            depth = depths[id(found)]
            direct = _repeatable(originals, bounded)
            template = _template(name, tuple(positional), len(originals), depth, direct)
            node.replace(out.placeholder(template.replace(_TEMPLATE_PARAM, f"{RESERVED_PREFIX}_{key}"), originals, direct))
        out.counts[name] += len(positional) - 1 if name in _OPERATORS else 1
    return out


def _ancestors(node: exp.Expr) -> list[exp.Expr]:
    out = []
    parent = node.parent
    while parent is not None:
        out.append(parent)
        parent = parent.parent
    return out


def _method_as_call(node: exp.Expr, name: str) -> exp.Func:
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
