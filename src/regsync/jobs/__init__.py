"""Jobs: what runs (registry), when (the daemon in schedule; the cadences are regsync.settings.jobs)
and how it went (status)."""
