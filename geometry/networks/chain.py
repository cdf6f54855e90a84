"""A graph read in topological order, folded into the canonical layer list.

The torch.fx conversion of a module, the ONNX reader and the ``torch.export`` reader all walk a graph
whose values are produced one node at a time. :class:`ChainBuilder` keeps the canonical form's view of
it: the *chain* (the layer list so far, ending in the current value), the earlier chain values (where a
branch may leave it: a residual's input, DenseNet's ``x``, a U-net's skip) and the *side branches* being
built off it (a projection shortcut, an Inception-style tower). Sums of two branches fold into a
``residual`` entry, concatenations along the channel axis into a ``concat`` entry; anything else is
refused by the caller's ``refuse``, naming what the graph does.
"""

from __future__ import annotations

import copy
from typing import Callable, Hashable

import torch

from geometry.errors import ArchitectureError


class ChainBuilder:
    """Canonical entries and their tensors (in the canonical state order) from a graph's nodes."""

    def __init__(self, start: Hashable, refuse: Callable[[str], ArchitectureError]):
        self.entries: list[dict] = []
        self.tensors: list[torch.Tensor] = []
        self.current = start
        self.position: dict = {start: (0, 0)}  # chain value -> (len(entries), len(tensors)) when it was current
        self.side: dict = {}  # value of a branch off the chain -> (where it left the chain, its entries, its tensors)
        self.joined: dict = {}  # concatenation value -> the values it joined
        self.refuse = refuse

    def is_current(self, value) -> bool:
        return value is self.current or value == self.current

    def _advance(self, value) -> None:
        self.position[value] = (len(self.entries), len(self.tensors))
        self.current = value

    def step(self, out, src, entries: list[dict], tensors: list[torch.Tensor], what: str) -> None:
        """``out = layers(src)``: the chain grows when ``src`` is its current value; a branch off it grows
        (or starts) when ``src`` is an earlier chain value or a branch. ``entries`` may be empty (a no-op).
        ``what`` starts the refusal ("calls conv1 on" ... "y, which is neither ...")."""
        if self.is_current(src):
            self.entries += entries
            self.tensors += tensors
            self._advance(out)
        elif src in self.side or src in self.position:
            origin, s_entries, s_tensors = self.side.pop(src) if src in self.side else (src, [], [])
            self.side[out] = (origin, s_entries + entries, s_tensors + tensors)
        else:
            raise self.refuse(f"{_lead(what)}{getattr(src, 'name', src)}, which is neither the layer chain nor a branch off it")

    def add(self, out, a, b, what: str) -> None:
        """``out = a + b`` as a residual: one of them the chain's current value, the other an earlier chain
        value (``x + f(x)``) or a branch off it (``shortcut(x) + f(x)``)."""
        other = b if self.is_current(a) else a if self.is_current(b) else None
        if other is None or not self._fold_sum(other):
            raise self.refuse(f"{_lead(what)}adds two values that are not a residual x + f(x) or shortcut(x) + f(x)")
        self._advance(out)

    def _fold_sum(self, other) -> bool:
        if other in self.side:
            origin, s_entries, s_tensors = self.side.pop(other)
            start, tstart = self.position[origin]
            body, body_tensors = self.entries[start:], self.tensors[tstart:]
            self.entries[start:] = [{"type": "residual", "body": body, "shortcut": s_entries}]
            self.tensors[tstart:] = body_tensors + s_tensors  # the state order of Residual(body, shortcut)
            return True
        if other in self.position:
            start, _ = self.position[other]
            self.entries[start:] = [{"type": "residual", "body": self.entries[start:]}]
            return True
        return False

    def concat(self, out, parts: list, what: str) -> None:
        """``out = cat(parts)`` along the channel axis: each part the chain's current value, an earlier chain
        value (an identity branch) or a branch off the chain, all leaving it at one place. A list that
        starts with an earlier concatenation's parts reuses it (a DenseNet block re-joins its growing
        list: ``cat([x, f1, f2]) = cat([cat([x, f1]), f2])``)."""
        given = tuple(parts)
        parts = list(parts)
        for earlier, its_parts in sorted(self.joined.items(), key=lambda kv: -len(kv[1])):
            if 1 < len(its_parts) < len(parts) and tuple(parts[: len(its_parts)]) == its_parts:
                parts = [earlier] + parts[len(its_parts) :]
                break
        if not self._fold_concat(parts):
            raise self.refuse(f"{_lead(what)}concatenates values that are not branches leaving the layer chain at one place")
        self.joined[out] = given
        self._advance(out)

    def _fold_concat(self, parts: list) -> bool:
        if len(parts) == 1 and self.is_current(parts[0]):
            return True  # cat([x]) is x
        others = [p for p in parts if not self.is_current(p)]
        if any(p not in self.side and p not in self.position for p in others):
            return False
        origins = {self.side[p][0] if p in self.side else p for p in others}
        if len(origins) > 1:
            return False
        origin = origins.pop() if origins else self.current
        if origin not in self.position or (len(others) == len(parts) and not self.is_current(origin)):
            return False  # the chain went on past the branching point and its end is not joined
        start, tstart = self.position[origin]
        body, body_tensors = self.entries[start:], self.tensors[tstart:]
        branches: list[list[dict]] = []
        branch_tensors: list[torch.Tensor] = []
        for p in parts:
            if self.is_current(p):
                branches.append(copy.deepcopy(body))
                branch_tensors += body_tensors
            elif p in self.side:
                branches.append(copy.deepcopy(self.side[p][1]))
                branch_tensors += self.side[p][2]
            else:
                branches.append([])  # the identity: the value where the branches leave the chain
        for p in others:
            self.side.pop(p, None)
        self.entries[start:] = [{"type": "concat", "branches": branches}]
        self.tensors[tstart:] = branch_tensors  # the state order of Concat(branches)
        return True

    def finish(self, out) -> tuple[list[dict], list[torch.Tensor]]:
        """The entries and tensors, once ``out`` (the graph's output) is checked to end the chain."""
        if not self.is_current(out):
            raise self.refuse("returns something other than the end of its layer chain")
        if self.side:
            raise self.refuse(f"computes {', '.join(str(getattr(v, 'name', v)) for v in self.side)} and never joins it to the chain")
        return self.entries, self.tensors


def _lead(what: str) -> str:
    """``what`` as the start of a message ("node Add_3 "), or nothing."""
    return f"{what} " if what else ""
