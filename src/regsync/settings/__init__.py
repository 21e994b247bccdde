"""The settings models of every stage, at the bottom of the import graph.

Each section of the config file (`[actions]`, `[jobs]`, `[metrics]`, `[reconcile]`) is a frozen
pydantic model here; `regsync.config` assembles them with the connection sections into `Settings`.
The stages import their section from here, never the reverse, so loading a setting never loads
a stage. Modules here import nothing of regsync's but `regsync.errors` and each other.
"""
