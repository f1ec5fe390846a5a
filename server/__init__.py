"""plancode runtime: model store, llama.cpp engine, prompts, analysis, sandbox, LSP server."""

__version__ = "0.1.0"
