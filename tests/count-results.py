"""Counts the test cases of `meson test` runs for tests/run-all.sh's last
line, "N passed, N failed, N skipped".

A pytest module is one meson test but many cases, some of which may skip:
its cases are read from the JUnit XML file it wrote (its --junitxml= in
meson's command line). A meson test that failed without a failed case in
its file (a crash, a timeout, a failing fixture teardown outside any case)
counts one more failure. Any other meson test (the C unit tests, the
fuzzers) is one case with meson's result.

Usage: count-results.py BUILD_DIR...; exits 1 when anything failed."""

import json
import os
import sys
import xml.etree.ElementTree as ET

PASSED = ("OK", "EXPECTEDFAIL")


def junit_path(cmd):
    for arg in cmd:
        if arg.startswith("--junitxml="):
            return arg[len("--junitxml="):]
    return None


def junit_cases(path):
    """{case id: 'passed'|'failed'|'skipped'}; a case reported twice (its
    call passed, its teardown errored) keeps the worst outcome."""
    worst = {"passed": 0, "skipped": 1, "failed": 2}
    cases = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in tc}
        if tags & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        key = (tc.get("classname"), tc.get("name"))
        if worst[outcome] >= worst[cases.get(key, "passed")]:
            cases[key] = outcome
    return cases


def count(build_dir, totals):
    with open(os.path.join(build_dir, "meson-logs", "testlog.json")) as f:
        for line in f:
            rec = json.loads(line)
            result = rec["result"]
            path = junit_path(rec.get("command") or [])
            cases = {}
            if path and os.path.exists(path):
                cases = junit_cases(path)
            if not cases:
                outcome = ("passed" if result in PASSED else
                           "skipped" if result == "SKIP" else "failed")
                totals[outcome] += 1
                continue
            for outcome in cases.values():
                totals[outcome] += 1
            if result not in PASSED and result != "SKIP" and \
                    "failed" not in cases.values():
                totals["failed"] += 1


def main():
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for d in sys.argv[1:]:
        count(d, totals)
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % totals)
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
