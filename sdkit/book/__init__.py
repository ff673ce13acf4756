"""What only the book's chapters use: experiment drivers, their budgets and result files.

Installed with sdkit (so the chapters run on Colab and Binder), but not imported by ``import sdkit``: a user who
reads sdkit to learn how distillation is built finds the library in ``sdkit/`` and the book's machinery here.
"""
