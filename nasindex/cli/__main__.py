"""``python -m nasindex.cli``: the same as the ``nasindex`` command."""

from nasindex.cli import main

if __name__ == "__main__":
    main()
