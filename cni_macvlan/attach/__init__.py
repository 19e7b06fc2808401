"""What every plugin that attaches a container through a link on a parent does (macvlan, ipvlan):
``config`` (the keys they share and the parent plan), ``verbs`` (ADD, DEL, CHECK, GC and STATUS,
given what is the plugin's own: its config, how it makes and checks its link). The IPAM is reached
through the core (cni/delegate.py), never imported.

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""
