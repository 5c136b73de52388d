"""The sweep spec's JSON Schema (`ablate schema`), made from the typed spec itself.

Editors read it through the YAML language server's modeline, the first line of every shipped
sweep (`# yaml-language-server: $schema=../docs/spec.schema.json`); the docs site publishes it.
The schema says what each field takes and refuses unknown keys; checks that need the whole spec
or the data (axis values, clusters, tokenizers) stay with `ablate validate`.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://ablate.dev/spec.schema.json"  # a name, not a download address
MODELINE_PREFIX = "# yaml-language-server: $schema="


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a sweep spec, with every field's description."""
    from ablate.spec import SweepSpec

    schema = SweepSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "ablate sweep spec", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """The schema as `ablate schema` prints it and docs/spec.schema.json holds it."""
    return json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"


def modeline(schema_path: str) -> str:
    """The first line of a spec that points an editor at the schema file `schema_path` (relative
    to the spec's folder, or a URL)."""
    return f"{MODELINE_PREFIX}{schema_path}"
