"""The subcommands of the ``hyperdml`` CLI, one module each (``HELP``, ``add_arguments``, ``run``).

Modules here import only the standard library at import time; torch and the rest load in ``run``.
"""
