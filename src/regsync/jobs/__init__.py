"""Jobs: what a pull does (pull), what runs (registry), when (the daemon in schedule; the cadences
are regsync.settings.jobs), how it went (status) and the figures each run leaves for monitoring
(metrics)."""
