"""Model store: catalog names, local paths and hf: specs resolved to verified GGUF files."""

from plancode.models.catalog import CATALOG, DEFAULT_MODEL
from plancode.models.store import ModelStore

__all__ = ["CATALOG", "DEFAULT_MODEL", "ModelStore"]
