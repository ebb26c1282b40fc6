"""Starts a program with a chosen signal state, as a parent process would.

Usage: with_signal_state.py IGNORED BLOCKED CORE_SOFT REPORT PROGRAM [ARGS...]

IGNORED and BLOCKED are comma-separated signal numbers (possibly empty):
those are set to SIG_IGN, and the signal mask is set to exactly BLOCKED.
Every other signal 1..31 is set to SIG_DFL first (Python ignores SIGPIPE and
SIGXFSZ and handles SIGINT itself). CORE_SOFT is the soft RLIMIT_CORE in
bytes, or "-" to leave it. Then writes the SigIgn and SigBlk lines of its own
/proc/self/status to the file REPORT ("-": nowhere), which is exactly the
state PROGRAM starts with (glibc's internal signals 32 and 33, which a parent
using posix_spawn may leave ignored, cannot be reset from here), and execs
PROGRAM.
"""
import os
import resource
import signal
import sys

ignored, blocked, core, report = sys.argv[1:5]
argv = sys.argv[5:]

for n in range(1, 32):
    if n not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(n, signal.SIG_DFL)
for n in filter(None, ignored.split(",")):
    signal.signal(int(n), signal.SIG_IGN)
if core != "-":
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (int(core), hard))
signal.pthread_sigmask(signal.SIG_SETMASK, [int(n) for n in filter(None, blocked.split(","))])
if report != "-":
    with open("/proc/self/status") as f:
        lines = [l for l in f if l.startswith(("SigIgn:", "SigBlk:"))]
    with open(report, "w") as f:
        f.writelines(lines)
os.execvp(argv[0], argv)
