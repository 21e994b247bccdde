"""Reading the sources: SOQL built safely, the pull's context (clients, clock, progress), progress display.

Nothing here normalizes or writes: the streams (regsync.streams) put extract, normalize and the
warehouse together.
"""
