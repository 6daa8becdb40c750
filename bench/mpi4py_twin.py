"""bench/mpi4py_twin.py: what the mpi4py twins (mpi_*.py) share.

They need mpi4py (Debian: python3-mpi4py). When the Python running them
has no mpi4py, the system's /usr/bin/python3 (where Debian installs it)
runs the file instead. As gilua's mpi module does for a program run
without mpiexec, workers may be more than the cores
(OMPI_MCA_rmaps_base_oversubscribe), so that 2 workers start on 2 cores.
"""
import os
import sys

os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
try:
    from mpi4py.futures import MPIPoolExecutor  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
