"""Model backends: in-process llama.cpp (default) behind one small contract."""

from plancode.engine.types import CancelToken, Engine, Generation, SamplingParams

__all__ = ["CancelToken", "Engine", "Generation", "SamplingParams"]
