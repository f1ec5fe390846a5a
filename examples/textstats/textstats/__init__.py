"""Small text and number utilities: the plancode demo project."""
