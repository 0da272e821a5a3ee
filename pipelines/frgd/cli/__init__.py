"""The ``frgd`` command line. Each ``cmd_*.py`` module in this package adds its commands (see ``main.py``)."""
