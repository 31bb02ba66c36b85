"""Typed pydantic models -> a Kubernetes structural OpenAPI v3 schema (a CRD's openAPIV3Schema).

pydantic's own JSON Schema is not what the API server accepts (``$defs``/``$ref``, ``anyOf`` for
optionals, titles), so this walks the models' fields itself and emits only what a structural schema
allows. What maps from the Python side:

- the field's alias (the camelCase wire name), ``description``, default (a model default emits
  ``{}``: the API server then fills the nested defaults itself), and whether it is required (no default);
- ``str``/``int``/``float``/``bool``, ``Literal[...]`` (an enum), ``list[X]``, ``dict[str, X]``,
  ``dict[str, Any]`` (an object without properties), nested models; ``X | None`` is an optional X;
- constraints: ``ge``/``le`` (minimum/maximum), ``min_length``/``max_length`` (minLength, minItems or
  minProperties by type), ``pattern``;
- a model with ``extra="allow"`` keeps unknown fields (``x-kubernetes-preserve-unknown-fields``);
- everything else, verbatim, from a :class:`Kube` marker: CEL rules (``x-kubernetes-validations``),
  ``format``, list types, or a whole replacement schema (``Kube(replace=True, ...)``, int-or-string).
  On a model class, the ``kube_schema`` class variable is merged into its object schema.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

Schema = dict[str, Any]


class Kube:
    """Schema keys copied verbatim into the generated schema of the annotated type or field."""

    def __init__(self, *, replace: bool = False, **schema: Any) -> None:
        self.replace = replace
        self.schema: Schema = schema

    def __repr__(self) -> str:
        return f"Kube({self.schema!r})"


def _flatten(metadata: typing.Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.extend(_flatten(m.metadata))
        else:
            out.append(m)
    return out


def _constraints(schema: Schema, metadata: list[Any]) -> None:
    kind = schema.get("type")
    lengths = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems")}
    lo, hi = lengths.get(kind or "", ("minProperties", "maxProperties"))
    for m in metadata:
        if isinstance(m, Kube):
            continue
        if isinstance(m, annotated_types.Ge):
            schema["minimum"] = m.ge
        elif isinstance(m, annotated_types.Le):
            schema["maximum"] = m.le
        elif isinstance(m, annotated_types.MinLen):
            schema[lo] = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            schema[hi] = m.max_length
        elif getattr(m, "pattern", None) is not None:
            schema["pattern"] = m.pattern
    for m in metadata:
        if isinstance(m, Kube) and not m.replace:
            schema.update(m.schema)


def type_schema(annotation: Any, metadata: typing.Sequence[Any] = ()) -> Schema:
    """The schema of one Python type (with the constraints and markers annotating it)."""
    meta = _flatten(metadata)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return type_schema(inner, [*_flatten(extra), *meta])
    for m in meta:
        if isinstance(m, Kube) and m.replace:
            return dict(m.schema)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{annotation}: a union needs Kube(replace=True, ...) to say its schema")
        return type_schema(args[0], meta)
    schema: Schema
    if origin is Literal:
        values = list(typing.get_args(annotation))
        schema = {"type": "string", "enum": values}
    elif origin is list:
        (item,) = typing.get_args(annotation)
        schema = {"type": "array", "items": type_schema(item)}
    elif origin is dict:
        _, value = typing.get_args(annotation)
        schema = {"type": "object"}
        if value is not Any:
            schema["additionalProperties"] = type_schema(value)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        schema = model_schema(annotation)
    elif annotation is str:
        schema = {"type": "string"}
    elif annotation is bool:
        schema = {"type": "boolean"}
    elif annotation is int:
        schema = {"type": "integer"}
    elif annotation is float:
        schema = {"type": "number"}
    else:
        raise TypeError(f"no Kubernetes schema for {annotation!r}")
    _constraints(schema, meta)
    return schema


def field_schema(info: FieldInfo) -> Schema:
    """One property: its type's schema, the field's description and default."""
    schema = type_schema(info.annotation, info.metadata)
    if info.description:
        schema = {"description": info.description, **schema}
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        schema["default"] = {} if isinstance(made, BaseModel) else made
    elif info.default is not PydanticUndefined and info.default is not None:
        schema["default"] = info.default
    return schema


def model_schema(model: type[BaseModel]) -> Schema:
    """An object schema: the model's fields by their aliases, the required ones, the class's ``kube_schema``."""
    schema: Schema = {"type": "object"}
    required: list[str] = []
    properties: Schema = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        properties[key] = field_schema(info)
        if info.is_required():
            required.append(key)
    if required:
        schema["required"] = required
    if model.model_config.get("extra") == "allow":
        schema["x-kubernetes-preserve-unknown-fields"] = True
    schema.update(getattr(model, "kube_schema", {}))
    if properties:
        schema["properties"] = properties
    return schema
