"""The part of the OpenTelemetry Operator's ``Instrumentation`` schema (``opentelemetry.io/v1alpha1``)
that docker/custom-instrumentation.yaml uses, written from the Operator's CRD, release line v0.158
(config/crd/bases/opentelemetry.io_instrumentations.yaml), and a validator that behaves like the API
server: a field the schema does not have is an error (``unknown field "spec.python.resources"``, as
kubectl's strict field validation reports it), so is a wrong type or a value outside an enum.

Objects this project does not configure (other languages, TLS, volumes...) are listed by name with
``UNCHECKED``: present in the schema, their contents not checked here.
"""

from __future__ import annotations

import re

OPERATOR_VERSION = "v0.158"
API_VERSION = "opentelemetry.io/v1alpha1"
KIND = "Instrumentation"

UNCHECKED = {"type": "object", "unchecked": True}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
# resource.Quantity: x-kubernetes-int-or-string with the quantity pattern.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
QUANTITY = {"type": "int-or-string", "pattern": QUANTITY_PATTERN}

ENV_VAR = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": STRING, "value": STRING, "valueFrom": UNCHECKED},
}
RESOURCE_REQUIREMENTS = {
    "type": "object",
    "properties": {
        "claims": {"type": "array", "items": UNCHECKED},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
        "requests": {"type": "object", "additionalProperties": QUANTITY},
    },
}
PYTHON = {
    "type": "object",
    "properties": {
        "env": {"type": "array", "items": ENV_VAR},
        "image": STRING,
        "resourceRequirements": RESOURCE_REQUIREMENTS,
        "volumeClaimTemplate": UNCHECKED,
        "volumeLimitSize": QUANTITY,
    },
}
SAMPLER_TYPES = [
    "always_on", "always_off", "traceidratio", "parentbased_always_on",
    "parentbased_always_off", "parentbased_traceidratio", "jaeger_remote", "xray",
]  # fmt: skip
PROPAGATORS = ["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"]

SPEC = {
    "type": "object",
    "properties": {
        "apacheHttpd": UNCHECKED,
        "defaults": UNCHECKED,
        "dotnet": UNCHECKED,
        "env": {"type": "array", "items": ENV_VAR},
        "exporter": {"type": "object", "properties": {"endpoint": STRING, "tls": UNCHECKED}},
        "go": UNCHECKED,
        "imagePullPolicy": STRING,
        "initContainerSecurityContext": UNCHECKED,
        "java": UNCHECKED,
        "nginx": UNCHECKED,
        "nodejs": UNCHECKED,
        "propagators": {"type": "array", "items": {"type": "string", "enum": PROPAGATORS}},
        "python": PYTHON,
        "resource": {
            "type": "object",
            "properties": {
                "addK8sUIDAttributes": BOOLEAN,
                "resourceAttributes": {"type": "object", "additionalProperties": STRING},
            },
        },
        "sampler": {
            "type": "object",
            "properties": {"argument": STRING, "type": {"type": "string", "enum": SAMPLER_TYPES}},
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"apiVersion": STRING, "kind": STRING, "metadata": UNCHECKED, "spec": SPEC, "status": UNCHECKED},
}


def validate(document, schema=SCHEMA) -> list[str]:
    """Errors of `document` against `schema`, worded like the API server's; [] when valid."""
    errors: list[str] = []
    _check(document, schema, "", errors)
    return errors


def _type_ok(value, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "int-or-string":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    raise ValueError(kind)


def _check(value, schema, path: str, errors: list[str]) -> None:
    where = path or "<root>"
    if not _type_ok(value, schema["type"]):
        errors.append(f'{where}: Invalid value: {value!r}: must be of type {schema["type"]}')
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f'{where}: Unsupported value: {value!r}: supported values: {", ".join(schema["enum"])}')
    if "pattern" in schema and isinstance(value, str) and not re.match(schema["pattern"], value):
        errors.append(f"{where}: Invalid value: {value!r}: must match {schema['pattern']}")
    if schema["type"] == "array":
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", errors)
    if schema["type"] != "object" or schema.get("unchecked"):
        return
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(f"{path}.{name}: Required value" if path else f"{name}: Required value")
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        child = f"{path}.{key}" if path else key
        if properties is not None and key in properties:
            _check(item, properties[key], child, errors)
        elif additional is not None:
            _check(item, additional, child, errors)
        else:
            errors.append(f'unknown field "{child}"')  # strict decoding, as kubectl apply reports it


def schema_paths(schema=SCHEMA, path: str = ""):
    """(dotted path, schema) of every property the schema names, for comparing with the CRD."""
    for key, child in schema.get("properties", {}).items():
        child_path = f"{path}.{key}" if path else key
        yield child_path, child
        if not child.get("unchecked"):
            yield from schema_paths(child, child_path)
            if child["type"] == "array" and "properties" in child["items"]:
                yield from schema_paths(child["items"], child_path + "[]")
