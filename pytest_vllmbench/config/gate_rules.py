"""Gate rules, `METRIC:CHANGE%`: which saved figures can be gated and in which direction each gets worse."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.measure.cell_record import HIGHER_IS_BETTER, LOWER_IS_BETTER

KNOWN_METRICS = HIGHER_IS_BETTER | LOWER_IS_BETTER
_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+):(?P<change>[+-]?\d+(\.\d+)?)%(?P<noise>:noise)?$")


def higher_is_better(metric: str) -> bool:
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    raise UsageError(f"cannot gate on unknown metric {metric!r}; known metrics: {', '.join(sorted(KNOWN_METRICS))}")


@dataclass(frozen=True)
class Rule:
    metric: str
    tolerance_pct: float  # how much worse the metric may get, in percent
    noise_aware: bool = False  # METRIC:CHANGE%:noise: with --rounds on both sides, see gate._noise_check

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = _RULE.match(text.strip())
        if not match:
            raise UsageError(
                f"gate rule {text!r}: expected METRIC:CHANGE% or METRIC:CHANGE%:noise, e.g. output_tokens_per_s:-5%"
            )
        metric, change = match["metric"], float(match["change"])
        better_up = higher_is_better(metric)
        if (better_up and change > 0) or (not better_up and change < 0):
            worse = "a drop" if better_up else "a rise"
            raise UsageError(
                f"gate rule {text!r}: for {metric} a regression is {worse}; write "
                f"{metric}:{'-' if better_up else '+'}{abs(change):g}%"
            )
        if better_up and abs(change) >= 100:  # a figure that only drops to zero cannot fall by 100 % or more
            raise UsageError(
                f"gate rule {text!r}: {metric} cannot drop by {abs(change):g}% or more, so the rule could never fail; "
                "give a drop under 100%"
            )
        return cls(metric, abs(change), bool(match["noise"]))
