"""JSON output of a model: parsed, then checked against the shape of the JSON schema it was asked to follow.

The check is the project's one JSON-schema check, `localrag.eval.judge.schema_problems` (the `jsonschema` library,
types, required keys and enums; length and count bounds steer llama.cpp's grammar and are not re-checked).
Constrained decoding already guarantees the shape on llama.cpp; the check catches cut-off output and servers that
ignore `response_format`."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from localrag.app.llm.base import Completion, LLMError
from localrag.eval.judge import schema_problems

__all__ = ["check_schema", "parse_json", "schema_problems"]


def check_schema(schema: Any) -> None:
    """ValueError unless `schema` is a JSON schema (a dict valid under its own draft, 2020-12 by default)."""
    if not isinstance(schema, dict):
        raise ValueError("schema must be a JSON schema dict")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {exc.message} (at {exc.json_path})") from None


def parse_json(c: Completion, schema: dict) -> dict:
    """The JSON object a completion holds, checked against `schema`; LLMError says what went wrong (cut off at
    max_tokens, not JSON, not matching the schema, not an object)."""
    try:
        value = json.loads(c.text)
    except json.JSONDecodeError:
        if c.finish_reason == "length":
            raise LLMError(
                f"the model's JSON was cut off at max_tokens={c.completion_tokens}: raise max_tokens "
                f"(llm_max_tokens) or ask for a smaller object; got {c.text[:200]!r}"
            ) from None
        raise LLMError(f"the model did not return valid JSON: {c.text[:200]!r}") from None
    problems = schema_problems(value, schema)
    if problems:
        raise LLMError("the model's JSON does not match the schema: " + "; ".join(problems[:5]))
    if not isinstance(value, dict):
        raise LLMError(f"expected a JSON object from the model, got {type(value).__name__} (use an object schema)")
    return value
