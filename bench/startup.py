"""bench/startup.py: twin of startup.lua. The harness times the whole
process (start-up is the point): start, import threading and time, exit."""
import threading  # noqa: F401
import time  # noqa: F401
