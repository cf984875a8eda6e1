"""Commands and counters that the end-to-end tests share on the default test bed."""
import json
import os
import signal
import subprocess
import time

STATS = "/run/sluice-testbed/stats.json"
PID_FILE = "/run/sluice-testbed/sluiced.pid"


def run(*args, check=True, timeout=300):
    """Run a command and return its CompletedProcess. With CHECK set, a non-zero exit raises
    RuntimeError."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("%s exited with %d:\n%s%s" % (" ".join(args), result.returncode, result.stdout,
                                                         result.stderr))
    return result


def stats():
    """Return sluiced's stats report, from a stats file that sluiced writes on SIGUSR1."""
    before = os.stat(STATS).st_mtime_ns if os.path.exists(STATS) else 0
    with open(PID_FILE) as f:
        os.kill(int(f.read().strip()), signal.SIGUSR1)
    deadline = time.time() + 5
    while time.time() < deadline:
        if os.path.exists(STATS) and os.stat(STATS).st_mtime_ns != before:
            break
        time.sleep(0.05)
    with open(STATS) as f:
        return json.load(f)
