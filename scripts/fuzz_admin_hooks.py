"""schemathesis hooks for scripts/fuzz-admin.sh.

Negative data generation makes queries that are not wrong for this API: a query string has no
types, and GPT-Load reads it leniently. A case whose only negative part is its query is dropped
when the server, reading the query as GPT-Load does, sees valid input, so a 200 for it is not
"negative data accepted":
- parameters the document does not name (`?=false`) are ignored, as HTTP APIs do;
- an empty value (`?groupId=`, an object or list sent as nothing) reads as absent, as GPT-Load
  1.x reads it, and the web UI sends its empty filter fields that way;
- a repeated parameter counts with its first value (gin's `c.Query`);
- a "wrong-typed" value whose text is valid (the string "0" for an integer; the integer 0 for a
  boolean, sent as `0`, which GPT-Load reads as false like Go's `strconv.ParseBool`).
Every other case is kept: positive cases, negative bodies and paths, and negative queries the
server must refuse (wrong types, out-of-range numbers, values outside an enum, bad times).
"""

import re

import schemathesis
from schemathesis import DataGenerationMethod

# What Go's strconv.ParseBool (and so GPT-Load's boolean query parameters) accepts.
GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
INTEGER = re.compile(r"-?[0-9]+")
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@schemathesis.hook
def filter_case(context, case):
    meta = getattr(case, "meta", None)
    if meta is None or meta.query != DataGenerationMethod.negative:
        return True
    operation = context.operation
    # Each part is marked with the case's mode even where the operation has no such part.
    for part, present in (
        (meta.body, len(operation.body) > 0),
        (meta.path_parameters, len(operation.path_parameters) > 0),
        (meta.headers, len(operation.headers) > 0),
    ):
        if present and part == DataGenerationMethod.negative:
            return True
    return not _query_reads_valid(operation, case.query or {})


def _query_reads_valid(operation, query):
    for parameter in operation.query:
        definition = getattr(parameter, "definition", None) or {}
        schema = definition.get("schema") or {}
        text = _first_sent(query.get(parameter.name))
        # The server trims query values; an empty one reads as absent.
        if text is None or text.strip() == "":
            if definition.get("required"):
                return False
            continue
        if not _text_valid(schema, text):
            return False
    return True


def _first_sent(value):
    """The text the server reads for a parameter: its first value sent (`None` items are not
    sent, objects are sent empty or not at all, nested lists are sent flat)."""
    for leaf in _leaves(value):
        return leaf
    return None


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        yield ""
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif value is not None:
        yield str(value)


def _text_valid(schema, text):
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types}
    if "string" in types and "enum" not in schema and "format" not in schema:
        return True
    if "enum" in schema:
        return text in [str(v) for v in schema["enum"]]
    if "integer" in types and INTEGER.fullmatch(text):
        n = int(text)
        return schema.get("minimum", n) <= n <= schema.get("maximum", n)
    if "boolean" in types:
        return text in GO_BOOLS
    if schema.get("format") == "date-time":
        return bool(RFC3339.fullmatch(text.strip()))
    return False
