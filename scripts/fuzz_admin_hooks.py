"""schemathesis hooks for scripts/fuzz-admin.sh.

Negative data generation makes queries that are not wrong for this API, so a 200 for them is
not "negative data accepted"; such cases are dropped, every other negative case (wrong types,
out-of-range numbers, values outside an enum, malformed times) is kept:
- parameters the document does not name (`?=false`): GPT-Load ignores unknown query parameters,
  as HTTP APIs do;
- empty values (`?groupId=`, an object or list sent as nothing): GPT-Load 1.x reads an empty
  query parameter as an absent one, and the web UI sends its empty filter fields that way;
- "wrong-typed" values whose query-string form is a valid value (the string "0" for an
  integer; the integer 0 for a boolean, sent as `0`, which GPT-Load reads as false like Go's
  `strconv.ParseBool`; a list whose first item is valid, since a repeated parameter counts
  with its first value): a query string has no types.
"""

import re

import schemathesis

# What Go's strconv.ParseBool (and so GPT-Load's boolean query parameters) accepts.
GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
INTEGER = re.compile(r"-?[0-9]+")


@schemathesis.hook
def filter_query(context, query):
    if not query:
        return True
    params = {p.name: p for p in context.operation.query}
    for name, value in query.items():
        if name not in params or _empty(value):
            return False
        if _reads_as_valid(_schema(params[name]), value):
            return False
    return True


def _schema(parameter):
    definition = getattr(parameter, "definition", None) or {}
    return definition.get("schema") or {}


def _reads_as_valid(schema, value):
    """Whether a value of the wrong Python type is read by the server as a valid value of
    `schema`: a scalar whose text is valid, or a list whose first item sent is (a repeated
    parameter counts with its first value, as in GPT-Load: `[0, "x"]` is `?groupId=0&groupId=x`,
    read as 0)."""
    # `None` items are not sent at all (`[None, False]` is sent as `?is_success=False`),
    # objects are sent empty or not at all (`[{}, 0]` as `?status_code=0`: counted as an
    # empty first value, which drops the case), nested lists are sent flat (`[[0]]` as
    # `?groupId=0`).
    leaves = list(_leaves(value))
    return bool(leaves) and _text_valid(schema, leaves[0])


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        # An object has no query-string form: schemathesis sends an empty value or nothing.
        yield ""
    elif value is not None:
        yield value


def _text_valid(schema, value):
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types}
    if isinstance(value, (list, tuple, dict)) or value is None:
        return False
    text = "true" if value is True else "false" if value is False else str(value)
    if text == "":
        # Read as absent (GPT-Load reads an empty parameter as a missing one).
        return True
    if "integer" in types and INTEGER.fullmatch(text):
        return True
    if "boolean" in types and text in GO_BOOLS:
        return True
    return False


def _empty(value):
    if value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_empty(v) for v in value)
    if isinstance(value, dict):
        # An object has no query-string form; schemathesis sends it as an empty value.
        return True
    return str(value) == ""
