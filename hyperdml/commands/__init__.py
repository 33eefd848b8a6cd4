"""The subcommands of the ``hyperdml`` CLI, one module each (``HELP``, ``add_arguments``, ``run``).

Modules here import only the standard library at import time; torch and the rest load in ``run``.
"""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: not when its help text already says it, nor when there
    is none to show (``None``, ``False``)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)
