"""`plancode doctor`: what is wrong with this install, one line each, with the fix."""
