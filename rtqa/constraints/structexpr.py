"""Structure expressions of constraint rows: ``"Liver - GTV"``, ``"Lung_L + Lung_R - GTV"``.

Grammar (left to right, no parentheses)::

    expr    := operand (("+" | "-") operand)*
    operand := NAME | 'quoted name' | "quoted name"
    NAME    := letters, digits and "_" (a TG-263 standard name such as SpinalCord_PRV05)

``+`` is a union and ``-`` a subtraction, evaluated left to right:
``Lung_L + Lung_R - GTV`` = (Lung_L ∪ Lung_R) \\ GTV. An operand spelled ``GTV``, ``CTV``,
``ITV`` or ``PTV`` (any case) is a *target class*: every structure of that class in the
plan (``GTVp``, ``GTV_Liver``, ...). Any other operand is an organ's TG-263 name, kept
exactly as written. Names with spaces or ``-`` must be quoted. Only parsing happens here;
the geometry is evaluated elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TARGET_CLASSES", "Operand", "Term", "StructExpr", "StructExprError",
           "parse_structure"]

TARGET_CLASSES = ("GTV", "CTV", "ITV", "PTV")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class StructExprError(ValueError):
    """A structure expression that cannot be parsed; the message says where and why."""


@dataclass(frozen=True)
class Operand:
    """One name in an expression. ``name`` is canonical (target classes upper-case)."""

    name: str
    quoted: bool = False

    @property
    def is_target_class(self) -> bool:
        """True for GTV/CTV/ITV/PTV: every structure of that class in the plan."""
        return not self.quoted and self.name in TARGET_CLASSES

    def __str__(self) -> str:
        if self.quoted or not self.name or not set(self.name) <= _NAME_CHARS:
            return "'" + self.name + "'" if "'" not in self.name else '"' + self.name + '"'
        return self.name


@dataclass(frozen=True)
class Term:
    """``sign`` is +1 (union) or -1 (subtraction); the first term is always +1."""

    sign: int
    operand: Operand


@dataclass(frozen=True)
class StructExpr:
    """Parsed expression. ``str(expr)`` is the canonical text (``"Lung_L + Lung_R - GTV"``),
    used as the structure key when grouping constraint rows."""

    terms: tuple[Term, ...]

    def __str__(self) -> str:
        out = str(self.terms[0].operand)
        for term in self.terms[1:]:
            out += (" + " if term.sign > 0 else " - ") + str(term.operand)
        return out

    @property
    def operands(self) -> tuple[Operand, ...]:
        return tuple(t.operand for t in self.terms)

    @property
    def organs(self) -> tuple[str, ...]:
        """Organ names (not target classes), in order, without duplicates."""
        return tuple(dict.fromkeys(o.name for o in self.operands if not o.is_target_class))

    @property
    def positive_organs(self) -> tuple[str, ...]:
        """Organs that are added (the tissue the constraint is about)."""
        return tuple(dict.fromkeys(t.operand.name for t in self.terms
                                   if t.sign > 0 and not t.operand.is_target_class))

    @property
    def target_classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.name for o in self.operands if o.is_target_class))

    @property
    def is_single(self) -> bool:
        """True for a plain name such as ``"SpinalCord"``."""
        return len(self.terms) == 1


def _fail(text: str, pos: int, why: str) -> StructExprError:
    return StructExprError(f"structure expression {text!r}: {why} (at character {pos + 1})")


def parse_structure(text: str) -> StructExpr:
    """Parse a structure expression; raise ``StructExprError`` with a clear reason."""
    if not isinstance(text, str):
        raise StructExprError(f"a structure expression must be text, got {text!r}")
    if not text.strip():
        raise StructExprError("empty structure expression")
    terms: list[Term] = []
    sign: int | None = 1  # pending operator; None = an operand was just read
    op_pos = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "+-":
            if sign is not None:
                why = ("expression starts with an operator" if not terms
                       else f"empty operand between two operators before {ch!r}")
                raise _fail(text, i, why)
            sign, op_pos = (1 if ch == "+" else -1), i
            i += 1
        elif ch in "'\"":
            if sign is None:
                raise _fail(text, i, "missing '+' or '-' between two names")
            end = text.find(ch, i + 1)
            if end < 0:
                raise _fail(text, i, f"unclosed quote {ch}")
            name = text[i + 1:end].strip()
            if not name:
                raise _fail(text, i, "empty quoted name")
            terms.append(Term(sign, Operand(name, quoted=True)))
            sign, i = None, end + 1
        elif ch in _NAME_CHARS:
            if sign is None:
                raise _fail(text, i, "missing '+' or '-' between two names (quote names "
                                     "that contain spaces)")
            j = i
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            name = text[i:j]
            if name.upper() in TARGET_CLASSES:
                name = name.upper()
            terms.append(Term(sign, Operand(name)))
            sign, i = None, j
        else:
            raise _fail(text, i, f"unexpected character {ch!r} (names use letters, digits "
                                 "and '_'; quote other names; operators are '+' and '-')")
    if sign is not None:
        raise _fail(text, op_pos, "dangling operator at the end (an operand is missing)")
    return StructExpr(tuple(terms))
