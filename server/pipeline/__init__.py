"""Plan-then-code for one function, verified against the user's tests."""

from server.pipeline.result import Candidate, PipelineResult
from server.pipeline.run import Pipeline

__all__ = ["Candidate", "Pipeline", "PipelineResult"]
