"""One place that turns the options of ``rtqa check`` into :class:`CheckOptions`.

``rtqa check`` (through :func:`rtqa.api.check`), ``rtqa batch`` (its workers, from
:class:`rtqa.batch.model.CheckSettings`) and ``rtqa serve`` / ``rtqa watch`` (their
worker processes, from the same settings) all build the options of a check here, by
keyword, so an option added to ``rtqa check`` means the same thing everywhere and
cannot be shifted into another's place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rtqa.checks.context import CheckOptions

__all__ = ["check_options", "END_CAPS", "DELIVERY"]

#: Values of ``--end-caps`` and ``--delivery`` (None: the conservative one per side).
END_CAPS = ("half", "none")
DELIVERY = ("concurrent", "sequential")


def _pairs(value) -> dict[str, str]:
    """A mapping, or (name, value) pairs (the frozen form batch settings keep), as a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {str(k): str(v) for k, v in value}


def check_options(*, protocol: str = "oligo-hcc", constraints: Iterable[str] = (),
                  fractions: int | None = None, overrides=None, sum_plans: bool = False,
                  delivery: str | None = None, end_caps: str = "half",
                  plan: str | None = None, roi_types=None, lesion_organs=None,
                  progress: Callable[[str], None] | None = None,
                  dvh_cache=None) -> CheckOptions:
    """The :class:`~rtqa.checks.context.CheckOptions` of one check.

    Each argument is the ``rtqa check`` option of the same name (``overrides`` is
    ``--map``, ``plan`` is ``--plan``); ``overrides``, ``roi_types`` and
    ``lesion_organs`` are mappings or (name, value) pairs. Raises ValueError for an
    ``end_caps`` or ``delivery`` value the check does not know."""
    from rtqa.checks.context import CheckOptions
    if end_caps not in END_CAPS:
        raise ValueError(f"end caps must be one of {', '.join(END_CAPS)}, not {end_caps!r}")
    if delivery is not None and delivery not in DELIVERY:
        raise ValueError(f"delivery must be one of {', '.join(DELIVERY)}, not {delivery!r}")
    return CheckOptions(protocol=protocol, constraints=tuple(constraints),
                        fractions=fractions, overrides=_pairs(overrides), progress=progress,
                        sum_plans=bool(sum_plans), dvh_cache=dvh_cache, delivery=delivery,
                        end_caps=end_caps, plan=plan or None, roi_types=_pairs(roi_types),
                        lesion_organs=_pairs(lesion_organs))
