"""The core's old place, kept only for launcher/ (its installer and zygote import ``faults``,
``jsonio`` and ``statefile`` from here, and build into the frozen program): the CNI core is the
top-level package ``cni``. Remove once launcher/ imports ``cni``.
"""
