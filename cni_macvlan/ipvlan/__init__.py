"""The ipvlan plugin: ``config`` (what its network config means), ``plugin`` (what is its own for
the shared verbs of attach/: its link, its routes by mode, upstream's words).

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""
