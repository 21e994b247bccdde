"""The pull's streams: each reads its source (through extract), normalizes and loads what it read.

A stream is declared once (object, fields, cursor, loader) and pulled incrementally: its state (a
watermark, a checkpoint) lives in the warehouse and moves only after the rows it covers are
committed. This package sits above extract, normalize and the warehouse, which know nothing of it.
"""
