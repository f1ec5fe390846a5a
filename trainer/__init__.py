"""plancode trainer: distils a teacher's plans into a student and exports it as GGUF.

Imports from ``server`` (prompts, analysis, sandbox) are allowed; the reverse is not.
"""
