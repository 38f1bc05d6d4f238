"""Sweeps and sensitivity scans measured on a Ray cluster (the optional ``cluster`` extra).

This package sits above ``measure`` (and above ``session``) in the core's layer
order: it only dispatches the work ``measure`` defines -- each configuration is
a Ray task that calls the same core function a local run calls -- and stores
every point as it arrives. Ray is imported lazily, only here, because it is an
optional dependency.
"""
