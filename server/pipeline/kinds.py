"""The pipeline's vocabulary: how a candidate was made, and where the tests came from.

Plain strings typed as ``Literal``, so they read the same in the result's JSON, in progress
events and in code. The bottom of the pipeline: this module imports nothing of plancode.
"""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["direct-greedy", "plan-greedy", "direct-sampled", "plan-sampled", "repair"]
"""How a candidate was made (a candidate the escalation model made carries that model's name
before it: ``qwen2.5-coder-1.5b:direct-greedy``)."""

DIRECT: Strategy = "direct-greedy"  # the model's greedy answer, no plan
PLAN_GREEDY: Strategy = "plan-greedy"  # greedy plan, then code from it
DIRECT_SAMPLED: Strategy = "direct-sampled"  # a sampled answer, no plan
PLAN_SAMPLED: Strategy = "plan-sampled"  # a sampled plan (CodePLAN), then greedy code
REPAIR: Strategy = "repair"  # a corrected plan and code after failing tests
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

def by_larger_model(strategy: str) -> bool:
    """Whether the strategy is an escalation model's (``model:strategy``)."""
    return ":" in strategy


def base_strategy(strategy: str) -> str:
    """The strategy without the escalation model's name."""
    return strategy.rpartition(":")[2]


TestsSource = Literal["user", "generated", "none"]
"""Where the tests came from: the user's (found in the workspace, the docstring's examples,
the ``test_command``), the model's own (``generated``: unverified), or none at all."""
