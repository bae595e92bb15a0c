"""Plain-text and Markdown tables of clean vs robust accuracy, made from :class:`~armor.results.Evaluation`s."""
from __future__ import annotations

from typing import Dict, List, Sequence

from ..results import Evaluation


def accuracy_rows(named_results: Dict[str, Evaluation], mark_cumulative: bool = False
                  ) -> tuple[List[str], List[List[str]]]:
    """Columns: clean, each attack, worst case; one row per named evaluation. With ``mark_cumulative`` a suite's
    cumulative per-attack numbers carry a † (after this attack and all before it)."""
    attack_names: List[str] = []
    for res in named_results.values():
        for name in res.attacks:
            if name not in attack_names:
                attack_names.append(name)
    header = ["model", "clean"] + attack_names + (["worst case"] if len(attack_names) > 1 else [])
    rows = []
    for label, res in named_results.items():
        row = [label, f"{res.clean_acc:.1f}"]
        dagger = "†" if mark_cumulative and res.acc_kind == "cumulative" else ""
        for name in attack_names:
            row.append(f"{res.acc(name):.1f}{dagger}" if name in res.attacks else "—")
        if len(attack_names) > 1:
            row.append(f"{res.worst_case_acc:.1f}")
        rows.append(row)
    return header, rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    if markdown:
        line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
        return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                         + [line(r) for r in rows])
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])
