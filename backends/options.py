"""Backend options (`pgstore?lease_s=1&workers=2`), typed and validated like scenario
fields, before anything starts.

Each backend declares its options as a frozen pydantic model (`Options`, a subclass of
`BackendOptions`); `load_backend` validates the text after `?` against it and hands the
constructor typed values, only those the user gave (the constructor keeps its own
defaults). Every problem is reported at once, each naming the backend, the option,
the value and the reason; an unknown option is named with the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import BackendError

__all__ = [
    "MAX_SECONDS",
    "MAX_SLOTS",
    "MAX_WORKERS",
    "BackendOptions",
    "Count",
    "Seconds",
    "Workers",
    "option_names",
    "parse_options",
]

MAX_WORKERS = 256  # worker processes per backend: more is a typo, not a benchmark
MAX_SLOTS = 100_000
MAX_SECONDS = 86_400.0

Workers = Annotated[int, Field(ge=1, le=MAX_WORKERS)]
Count = Annotated[int, Field(ge=1, le=MAX_SLOTS)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]


class BackendOptions(BaseModel):
    """The options of one backend: unknown names are refused, values are coerced from
    the text of the backend name (`workers=4` is the integer 4) and checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BackendOptions)


def option_names(model: type[BackendOptions]) -> list[str]:
    return sorted(n for n in model.model_fields if n != "variant")


def _reason(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "greater_than" and ctx.get("gt") == 0:
        return "must be a positive number"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    return str(error.get("msg", "is invalid")).lower()


def parse_options(label: str, model: type[M], raw: Mapping[str, object]) -> M:
    """`raw` (option -> text, or a value already typed) as `model`, or one BackendError
    naming `label` (the backend as the user wrote it), each bad option, its value, why."""
    known = option_names(model)
    unknown = [key for key in raw if key not in model.model_fields]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise BackendError(
            f"backend {label!r}: bad options: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{names}; {'options: ' + ', '.join(known) if known else 'it takes no options'}"
        )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"option {name}={raw.get(name)!r} {_reason(error)}")
        raise BackendError(f"backend {label!r}: {'; '.join(problems)}") from None
