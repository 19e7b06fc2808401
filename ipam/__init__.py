"""host-local IPAM: config and ranges, the allocator, the lease store interface and its disk backend.

Layers, as in the upstream Go plugin: ``ranges``/``config`` (pure parsing and range math),
``allocator`` (pure round robin over a Store), ``store`` (the interface) and ``disk`` (files and
flock), with ``plugin`` holding the CNI verbs. This package imports the CNI core (the top-level
``cni``) and nothing else of ours (tests/test_layers.py).
"""
