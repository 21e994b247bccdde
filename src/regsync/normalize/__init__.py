"""Pure functions from raw API payloads to typed warehouse rows; a bad record raises RecordRejected."""
