"""Server-side validation against the Kubernetes 1.30 JSON schemas shipped by `kubernetes-validate`,
honouring the `fieldValidation` parameter: type errors are always 422; unknown fields are 422 (Strict), a
warning (Warn, the default) or nothing (Ignore).

`kubernetes_validate.validate` reads and compiles the schema files on every call (~8 ms); we build one
strict validator per kind once, from the same files, and collect every error in a single pass.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sim.k8s.errors import invalid

SCHEMA_VERSION = "1.30"


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    """The strict Draft 2020-12 validator for one kind, or None when the package has no schema for it."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = [v for v in utils.all_versions() if utils.major_minor(v) <= SCHEMA_VERSION][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(definitions) @ (
        Resource.from_contents(schema) @ Registry()
    )
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _path(parts: Any) -> str:
    """A field path as the API server writes it: `spec.containers[0].image`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(obj: dict[str, Any], field_validation: str | None, warnings: list[str]) -> None:
    """Raise 422 Invalid for a malformed object; collect unknown-field warnings under Warn."""
    validator = _validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if validator is None:
        return
    mode = (field_validation or "Warn").capitalize()
    kind = str(obj.get("kind", ""))
    name = str((obj.get("metadata") or {}).get("name", ""))
    unknown: list[str] = []
    for error in validator.iter_errors(obj):
        if error.validator != "additionalProperties":
            cause = {
                "type": "FieldValueInvalid",
                "message": error.message,
                "field": _path(error.absolute_path),
            }
            raise invalid(kind, name, [cause])
        allowed = set((error.schema.get("properties") or {}).keys())
        container = error.instance if isinstance(error.instance, dict) else {}
        unknown.extend(_path([*error.absolute_path, key]) for key in container if key not in allowed)
    if not unknown or mode == "Ignore":
        return
    if mode == "Strict":
        causes = [
            {"type": "FieldValueInvalid", "message": f'unknown field "{f}"', "field": f} for f in unknown
        ]
        raise invalid(kind, name, causes)
    warnings.extend(f'unknown field "{f}"' for f in unknown)
