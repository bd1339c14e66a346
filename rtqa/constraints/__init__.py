"""Dose constraints: model, TOML loading and validation, selection by fraction count.

A constraint row says: on ``structure`` (a structure expression, see ``rtqa.constraints.structexpr``),
the TG-263 ``metric`` (see ``rtqa.dvh.metrics``) must satisfy ``limit``. Units are those of the
metric's result unit: Gy for dose metrics, cc or % for volume metrics. Every row carries
its ``source`` (paper and table) and verification ``status``:

* ``V``  value seen in a public reproduction of the primary table (on by default);
* ``V2`` seen only in a secondary compilation (off by default);
* ``U``  not confirmed (off by default).

Rows marked ``fractionation = "conventional"`` hold for 1.8-2 Gy fractions; for a
hypofractionated plan they are evaluated on the voxel-wise EQD2 distribution (see
``select``). The file format is documented in ``FORMAT_HELP`` (also ``rtqa constraints
--help``); protocols are described in ``load_protocol``.

Modules:

* ``model``: ``Limit``, ``Constraint``, ``ConstraintSet``, ``Protocol`` and the protocol
  rules (``LesionRule``, ``OligoprogressionRule``, ``PlanningCTRule``, ``PTVMarginRule``,
  ``LimitsRule`` with its ``Replacement``s);
* ``selection``: ``select``, ``SelectedRow``, ``is_hypofractionated``,
  ``default_alpha_beta`` (what applies to a plan of N fractions, EQD2 conversion,
  informative conventional rows, organs with no limit);
* ``derivation``: ``derive_rows``, ``Derivation``, ``isoeffective_total_dose`` (limits for
  fraction counts no source covers, by LQ isoeffect from the nearest sourced schedule,
  within 1-8 fractions: ``DERIVATION_MAX_FRACTIONS``);
* ``constraint_file``: ``FORMAT_HELP``, ``load_constraint_file``, ``parse_fractions``;
* ``protocol_file``: ``load_protocol``, ``resolve_protocol``;
* ``toml_reading``: TOML reading with line numbers for error messages.

The constraint library itself (TOML data) is the top-level ``constraints/`` folder of the
source tree, located by ``rtqa.paths``. Every name the former single module
``rtqa/constraints.py`` held, private helpers included, is importable from here.
"""

from __future__ import annotations

from rtqa.constraints.constraint_file import (FORMAT_HELP, ROW_KEYS, _parse_row, _rows,
                                              load_constraint_file, parse_fractions)
from rtqa.constraints.model import (COMPARATORS, DOSE_TYPES, PRIORITIES, STATUSES, Constraint,
                                    ConstraintSet, LesionRule, Limit, LimitsRule,
                                    PrescriptionRule,
                                    OligoprogressionRule,
                                    PlanningCTRule, Protocol, PTVMarginRule, Replacement, _num)
from rtqa.constraints.protocol_file import (PROTOCOL_SECTIONS, _check, _ct, _include,
                                            _lesions, _margin, _oligo, _section,
                                            load_protocol, resolve_protocol)
from rtqa.constraints.selection import (ALPHA_BETA_CNS, ALPHA_BETA_LATE, APPLY, CNS_STRUCTURES,
                                        CONVENTIONAL_MAX_DOSE_PER_FRACTION_GY,
                                        CONVENTIONAL_MIN_FRACTIONS, DISABLED, EXEMPT, NONE,
                                        REPLACED,
                                        SelectedRow, _apply, _base_organ, _why_disabled,
                                        default_alpha_beta, is_hypofractionated, select)
from rtqa.constraints.derivation import (DERIVATION_MAX_FRACTIONS, Derivation, bed,
                                         derive_rows, in_derivation_range,
                                         isoeffective_total_dose)
from rtqa.constraints.toml_reading import (_HEADER, _header_lines, _key_line, _number,
                                           _read_toml, _RowError, _text, _top_level,
                                           _unknown_keys)
# names the former module imported, still reachable as rtqa.constraints.<name>
from rtqa.errors import ConstraintFileError, MetricSyntaxError
from rtqa.paths import constraints_dir, protocols_dir
from rtqa.constraints.structexpr import TARGET_CLASSES, StructExpr, StructExprError, parse_structure

__all__ = [
    "Limit", "Constraint", "ConstraintSet", "Protocol", "SelectedRow", "LesionRule",
    "OligoprogressionRule", "PlanningCTRule", "PTVMarginRule", "LimitsRule", "Replacement",
    "PrescriptionRule",
    "Derivation", "DERIVATION_MAX_FRACTIONS", "in_derivation_range",
    "derive_rows", "isoeffective_total_dose", "load_constraint_file",
    "load_protocol", "resolve_protocol", "select", "is_hypofractionated",
    "default_alpha_beta", "FORMAT_HELP",
]
