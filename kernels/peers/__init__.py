"""Peers: the libraries a user would otherwise call, run through the same contract as our kernels.

Imports of torch happen inside ``prepare`` so that this package loads without it.
"""
