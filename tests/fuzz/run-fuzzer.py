#!/usr/bin/env python3
"""Runs one fuzz target for a bounded time as a meson test: the committed
seed corpus is read but never written (new inputs go to a temp dir that is
removed afterwards), and a crashing input is kept under ARTIFACTS.

    run-fuzzer.py FUZZER CORPUS ARTIFACTS SECONDS [LIBFUZZER-FLAG...]
"""

import os
import shutil
import subprocess
import sys
import tempfile


def main(argv):
    fuzzer, corpus, artifacts, seconds = argv[1:5]
    extra = argv[5:]
    os.makedirs(artifacts, exist_ok=True)
    name = os.path.basename(fuzzer)
    work = tempfile.mkdtemp(prefix=name + "-")
    cmd = [fuzzer, "-max_total_time=%d" % int(seconds), "-timeout=10",
           "-rss_limit_mb=2048", "-close_fd_mask=3", "-print_final_stats=1",
           "-artifact_prefix=" + os.path.join(artifacts, name + "-")] + \
        extra + [work, corpus]
    print(" ".join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    try:
        p = subprocess.run(cmd, env=env, timeout=int(seconds) + 120)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        print("%s did not stop within %s s" % (name, int(seconds) + 120))
        rc = 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rc:
        print("%s failed (status %d); reproducers are in %s" % (
            name, rc, artifacts))
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
