"""The plancode language server (pygls): inline completions and verified implementations."""
