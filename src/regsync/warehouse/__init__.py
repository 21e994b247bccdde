"""The local SQL warehouse: tables, migrations, set-based upserts, stream state and the run ledger."""
