"""Every `fieldbot` subcommand, one module each (`bot/cli.py` gathers them).

An operator mistake raises ``CliError``: printed as one Vietnamese line, exit status 2, never a traceback.
"""


class CliError(Exception):
    """An operator mistake: printed as one line, exit status 2."""
