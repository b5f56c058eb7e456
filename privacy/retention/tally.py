"""A sweep's counts: what the ``retention.swept`` audit entry and the run's summary hold.

Counts only, nothing personal; a dry run's ``would_go`` lists pseudonymous subject ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("delete", "anonymise", "minimise")
MAX_WOULD_GO = 1000


@dataclass
class Tally:
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    deleted: int = 0
    anonymised: int = 0
    fields_removed: int = 0
    tasks_planned: int = 0
    would_go: list[dict[str, Any]] = field(default_factory=list)
    would_go_total: int = 0

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Tally:
        """The counts a resumed run had stored (its work so far)."""
        subjects = summary.get("subjects") or {}
        return cls(counts=summary.get("counts") or {}, deleted=subjects.get("deleted", 0),
                   anonymised=subjects.get("anonymised", 0), fields_removed=summary.get("fields_removed", 0),
                   tasks_planned=summary.get("tasks_planned", 0))

    def field(self, purpose: str, category: str, action: str) -> None:
        by_category = self.counts.setdefault(purpose, {})
        counts = by_category.setdefault(category, dict.fromkeys(ACTIONS, 0))
        counts[action] += 1
        self.fields_removed += 1

    def would(self, subject_id: str, purpose: str, action: str, fields: list[str]) -> None:
        self.would_go_total += 1
        if len(self.would_go) < MAX_WOULD_GO:
            self.would_go.append({"subject_id": subject_id, "purpose": purpose, "action": action,
                                  "fields": sorted(fields)})

    def summary(self, run_id: str, as_of: str, dry_run: bool) -> dict[str, Any]:
        """The audit entry's details (with ``would_go`` for a dry run)."""
        out: dict[str, Any] = {"run": run_id, "as_of": as_of, "dry_run": dry_run, "counts": self.counts,
                               "subjects": {"deleted": self.deleted, "anonymised": self.anonymised},
                               "fields_removed": self.fields_removed, "tasks_planned": self.tasks_planned}
        if dry_run:
            out["would_go"] = list(self.would_go)
            out["would_go_total"] = self.would_go_total
        return out
