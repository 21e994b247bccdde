"""Process-wide settings made once, when a command starts and before it starts any thread."""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas; True when the cap was set.

    glibc gives threads arenas of their own (up to eight per core), and memory freed in one arena
    is not reused by the others. A pull runs a thread per stream, per SOQL slice and per Checkfront
    worker, each allocating pages, answers and SQLite cache: a sliced pull of 60,000 registrations
    peaked at 236 MB with the default and at 189 MB with two arenas, at the same speed. An operator's
    own MALLOC_ARENA_MAX is left alone; off glibc this does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
