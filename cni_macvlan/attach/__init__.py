"""What every plugin that attaches a container through a link on a parent does (macvlan, ipvlan):
``config`` (the keys they share and the parent plan), ``verbs`` (ADD, DEL, CHECK, GC and STATUS,
given what is the plugin's own: its config, how it makes and checks its link), ``ipam_call`` (the one
seam to the IPAM: exec'd, or our host-local in-process).

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""
