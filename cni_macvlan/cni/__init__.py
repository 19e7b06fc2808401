"""The CNI protocol core shared by both plugins: environment, versions, results, errors, delegation.

Rule of membership: nothing here knows about macvlan or address allocation, and nothing here imports
a third-party package. Every module is on the exec path of every plugin call, so each one imports only
C built-ins and small stdlib modules (see README, "What stays off the exec path").
"""
