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


def tagged_union(configs: tuple[type, ...], by_kind: Callable[[Any], Any]) -> Any:
    """The spec type of an entry of a list of stages or evaluators: one of `configs`, told apart by
    its `kind` (a discriminated union); `by_kind` turns a bare name into `{kind: name}` first."""
    if len(configs) == 1:
        return Annotated[configs[0], BeforeValidator(by_kind)]
    return Annotated[(Union[configs], Field(discriminator="kind"), BeforeValidator(by_kind))]
