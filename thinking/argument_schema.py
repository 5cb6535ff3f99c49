"""Checks a tool call's arguments against the tool's JSON schema: the small subset tools here use.

Covered: ``type`` (object, string, integer, number, boolean, array, null, or a list of
them), ``properties``, ``required``, ``additionalProperties: false``, ``enum``, ``items``,
``minLength``/``maxLength`` and ``minimum``/``maximum``. Other keywords are ignored, not
rejected: a schema written for a fuller validator still works, only less strictly. The
messages go back to the LLM as the tool's error, so they name the field and what was
wrong in plain words it can correct.
"""

from __future__ import annotations

from typing import Any

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema``; empty when it fits."""
    where = path or "arguments"
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            return [f"{where}: expected {' or '.join(names)}, got {_type_name(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def _object_errors(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    properties: dict[str, Any] = schema.get("properties") or {}
    prefix = f"{path}." if path else ""
    errors = [f"{prefix}{name}: required" for name in schema.get("required", ()) if name not in value]
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], prefix + name)
        elif schema.get("additionalProperties") is False:
            errors.append(f"{prefix}{name}: unknown field (expected: {', '.join(properties) or 'none'})")
    return errors


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON's true is not the number 1
    if name == "integer" and isinstance(value, float):
        return value.is_integer()  # JSON has one number type: 3.0 is an integer
    return isinstance(value, _PYTHON_TYPES.get(name, object))


def _type_name(value: Any) -> str:
    for name, types in _PYTHON_TYPES.items():
        if _is_type(value, name) and name != "number":
            return name
    return "number" if isinstance(value, float) else type(value).__name__
