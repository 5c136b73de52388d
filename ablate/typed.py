"""The base of every typed settings object: frozen, no unknown keys, finite numbers."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Frozen(BaseModel):
    # Numbers are finite (no inf / nan learning rates, epochs or weights).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# Field metadata (json_schema_extra) for settings that are not part of a cell's identity:
# NOT_IDENTITY never (how often to log, whether to save the model), UNLESS_DEFAULT only when set
# to something other than the default (settings added after cells were cached under their ids).
NOT_IDENTITY = {"identity": "never"}
UNLESS_DEFAULT = {"identity": "unless_default"}


class AlsoNamed:
    """Field metadata for the JSON Schema (`ablate schema`) of a field whose validator also takes a
    bare name (a stage or evaluator kind, a cluster-map preset): the value's own schema, or one of
    these names. `names` is the list, or a function that gives it (read when the schema is made)."""

    def __init__(self, names: list[str] | Callable[[], list[str]]):
        self.names = names

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict:
        names = list(self.names() if callable(self.names) else self.names)
        return {"anyOf": [{"type": "string", "enum": names}, handler(core_schema)]}


def tagged_union(configs: tuple[type, ...], what: str) -> Any:
    """The spec type of an entry of a list of stages or evaluators (`what`): one of `configs`, told
    apart by its `kind` (a discriminated union). A bare name is shorthand for `{kind: name}`; an
    unknown kind is named with the known ones."""
    kinds = [config.model_fields["kind"].default for config in configs]

    def by_kind(value: Any) -> Any:
        from ablate.errors import did_you_mean

        entry = {"kind": value} if isinstance(value, str) else value
        if isinstance(entry, dict) and "kind" not in entry:
            raise ValueError(f"this {what} block has no 'kind'; give kind: one of {', '.join(sorted(kinds))}")
        if isinstance(entry, dict) and entry.get("kind") not in kinds:
            raise ValueError(f"unknown {what} '{entry.get('kind')}'. {did_you_mean(str(entry.get('kind')), kinds)}")
        return entry

    if len(configs) == 1:
        return Annotated[configs[0], BeforeValidator(by_kind), AlsoNamed(kinds)]
    return Annotated[(Union[configs], Field(discriminator="kind"), BeforeValidator(by_kind), AlsoNamed(kinds))]
