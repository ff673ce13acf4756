"""``python -m sdkit.experiments``: kept so that documented commands still run; the code is
:mod:`sdkit.book.experiments`."""

if __name__ == "__main__":
    import sys

    from .book.experiments import main

    sys.exit(main())
