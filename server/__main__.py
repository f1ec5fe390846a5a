"""``python -m plancode``: the same command as the ``plancode`` console script."""

from plancode.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
