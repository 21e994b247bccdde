"""Streams declared once (object, fields, cursor, loader) and the engine that pulls them incrementally."""
