"""The macvlan plugin: ``config`` (what its network config means), ``plugin`` (the verbs) and
``ipam_call`` (the one seam to the IPAM, exec'd or our host-local in-process).

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""
