"""bench/startup_empty.py: twin of startup_empty.lua. The harness times the
whole process: start the interpreter on an empty script and exit."""
