"""Plan-then-code for one function, verified against the user's tests."""

from plancode.pipeline.result import Candidate, PipelineResult
from plancode.pipeline.run import Pipeline

__all__ = ["Candidate", "Pipeline", "PipelineResult"]
