"""A small shop back-office library (plancode's realistic benchmark project)."""
