"""The form contract as data: which form types exist and their JSON Schema files.

The schema files live in processor/schemas/ (where integrators look for them); they are read here,
as data, so the processor (which validates against them) and the handbook (which documents them)
share one source without either engine importing the other.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "processor" / "schemas"
TICKET_KINDS = ("repair", "complaint", "inquiry", "suggestion", "praise", "service")  # forms that open a ticket
RECORD_TYPES = ("survey", "duty_log", "handover", "quiz_result")
FORM_TYPES = (*TICKET_KINDS, "update", *RECORD_TYPES)


@cache
def _load() -> dict[str, dict[str, Any]]:
    return {p.name.removesuffix(".schema.json"): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(SCHEMA_DIR.glob("*.schema.json"))}


def load_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file of the contract, keyed by name ("common", "repair", ...); callers get a fresh copy."""
    return json.loads(json.dumps(_load()))
