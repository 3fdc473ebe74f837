#!/usr/bin/env python3
"""Compiles the daemon's library sources with clang and libFuzzer's
instrumentation into one static archive, so each fuzz target links only the
objects it needs whatever the main build's compiler is.

    build-lib.py OUT.a OBJDIR CLANG AR [CFLAG...] -- SOURCE...
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def main(argv):
    out, objdir, clang, ar = argv[1:5]
    rest = argv[5:]
    sep = rest.index("--")
    cflags, sources = rest[:sep], rest[sep + 1:]
    os.makedirs(objdir, exist_ok=True)

    def compile_one(src):
        obj = os.path.join(objdir, os.path.basename(src) + ".o")
        p = subprocess.run([clang, "-c"] + cflags + [src, "-o", obj],
                           capture_output=True, text=True)
        return obj, p

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = list(pool.map(compile_one, sources))
    failed = False
    for _obj, p in results:
        sys.stderr.write(p.stderr)
        failed |= p.returncode != 0
    if failed:
        return 1
    if os.path.exists(out):
        os.unlink(out)
    return subprocess.run([ar, "rcs", out] + [o for o, _ in results]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
