"""The SPC domain: constants, subgroups, control charts, run rules, capability (NumPy only, no I/O)."""

from gongyun.apps.quality.spc.capability import Capability, capability
from gongyun.apps.quality.spc.charts import ChartKind, ChartResult, ControlLimits, evaluate, phase1
from gongyun.apps.quality.spc.constants import TABLE, constants
from gongyun.apps.quality.spc.rules import ALL_RULES, RuleSet, evaluate_rules
from gongyun.apps.quality.spc.subgroups import Subgroups, by_count, by_lot, by_time_window

__all__ = [
    "ALL_RULES",
    "TABLE",
    "Capability",
    "ChartKind",
    "ChartResult",
    "ControlLimits",
    "RuleSet",
    "Subgroups",
    "by_count",
    "by_lot",
    "by_time_window",
    "capability",
    "constants",
    "evaluate",
    "evaluate_rules",
    "phase1",
]
