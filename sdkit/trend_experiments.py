"""``python -m sdkit.trend_experiments``: kept so that documented commands still run; the code is
:mod:`sdkit.book.trend_experiments`."""

if __name__ == "__main__":
    from .book.trend_experiments import main

    main()
