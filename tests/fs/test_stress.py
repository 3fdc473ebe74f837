"""Many readers at once.

16 processes read the same cold directory, or the whole tree, at the same
moment, each starting at a different file so that they ask for different
files at once: each gets exactly the model's bytes, nothing fails, and each
object is downloaded once however many readers wait for it.

The same readers run against a daemon built with ThreadSanitizer
($WIVAUDIT_TSAN_BIN, built by tests/meson.build outside sanitized builds),
with listings expiring under them (list_ttl=1); any report fails the test.
"""

import os
import subprocess
import time

import pytest

import refmodel
from conftest import PYTHON, assert_tree, generate, walk

BUCKET = "stress"
READERS = 16
STEP_TIMEOUT = 180
# Under ThreadSanitizer: stop at the first report; ask for both stacks of a
# lock-order inversion.
TSAN_OPTIONS = "halt_on_error=1:second_deadlock_stack=1"


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory):
    d = tmp_path_factory.mktemp("stress") / "mirror"
    generate(d, "--orgs", "2", "--days", "4", "--objects-per-day", "2",
             "--events-per-object", "6", "--seed", "47")
    model = refmodel.Model(str(d))
    s3.seed(BUCKET, d)
    return model


# A reader: walks root/under in name order and prints every file, starting
# at file number `start` and wrapping around, so that readers started
# together ask for different files at the same moment.
READER = r"""
import os, sys
root, under, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = []
for d, dirs, names in os.walk(os.path.join(root, under)):
    dirs.sort()
    files += [os.path.join(d, n) for n in sorted(names)]
files.sort(key=lambda p: os.fsencode(os.path.relpath(p, root)))
k = start % max(1, len(files))
for p in files[k:] + files[:k]:
    with open(p, "rb") as f:
        sys.stdout.buffer.write(f.read())
"""


def expected(model, under, start):
    """What READER prints for root/under from file number start."""
    prefix = under + b"/" if under else b""
    files = [model.files[p].content for p in sorted(model.files)
             if p.startswith(prefix)]
    k = start % max(1, len(files))
    return b"".join(files[k:] + files[:k])


def read_all(root, under, n=READERS, step=7):
    """n readers started together, reader i from file number i * step.
    Returns [(start, status, stdout, stderr)]."""
    procs = [(i * step, subprocess.Popen(
        [PYTHON, "-c", READER, root, os.fsdecode(under), str(i * step)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)) for i in range(n)]
    out = []
    deadline = time.monotonic() + STEP_TIMEOUT
    try:
        for start, p in procs:
            so, se = p.communicate(timeout=max(1, deadline -
                                               time.monotonic()))
            out.append((start, p.returncode, so, se))
    except subprocess.TimeoutExpired:
        pytest.fail("%d readers of %s did not finish in %d s" % (
            n, under, STEP_TIMEOUT))
    finally:
        for _start, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    return out


def check_readers(model, under, results):
    for start, rc, so, se in results:
        want = expected(model, under, start)
        assert rc == 0 and not se, "reader from %d: status %d: %s" % (
            start, rc, se.decode(errors="replace")[-1000:])
        assert so == want, "reader from %d got %d bytes, want %d" % (
            start, len(so), len(want))


def object_gets(s3, since):
    """Paths of the objects GET after since, one per request."""
    return [u.split("?")[0] for u in s3.object_gets(since)]


def cold_day(model):
    """A day directory from the middle of the tree."""
    days = sorted(p for p in model.dirs if p.count(b"/") == 3)
    return days[len(days) // 2]


def test_parallel_readers_of_one_cold_day(s3, bucket, mounter):
    model = bucket
    day = cold_day(model)
    m = mounter.mount("s3://" + BUCKET)
    since = s3.mark()
    check_readers(model, day, read_all(m.path, day))
    gets = object_gets(s3, since)
    assert gets, "no object was downloaded"
    dups = sorted({u for u in gets if gets.count(u) > 1})
    assert not dups, "downloaded more than once: %s" % dups


def test_parallel_readers_of_whole_tree(s3, bucket, mounter):
    model = bucket
    m = mounter.mount("s3://" + BUCKET)
    since = s3.mark()
    check_readers(model, b"", read_all(m.path, b""))
    gets = object_gets(s3, since)
    assert len(gets) == len(set(gets)) == len(model.objects), \
        "%d GETs of %d distinct objects, want each of %d once" % (
            len(gets), len(set(gets)), len(model.objects))
    assert_tree(walk(m.path), model)


def test_under_thread_sanitizer(s3, bucket, mounter, monkeypatch):
    """Readers of one day, of the whole tree, then again after the
    listings expired, against the ThreadSanitizer build; every object's
    first GET is throttled, and the cache is too small for the tree, so
    retries and evictions happen under the readers too."""
    tsan = os.environ.get("WIVAUDIT_TSAN_BIN")
    if not tsan:
        pytest.skip("no ThreadSanitizer build (WIVAUDIT_TSAN_BIN unset: "
                    "sanitized build directory)")
    model = bucket
    monkeypatch.setenv("WIVAUDIT_BIN", tsan)
    env = mounter.env(extra={"TSAN_OPTIONS": TSAN_OPTIONS})
    s3.set_faults([{"op": "get", "action": "status", "status": 503,
                    "code": "SlowDown", "per_url": True, "times": 1}])
    try:
        m = mounter.mount("s3://" + BUCKET, env=env,
                          opts=["list_ttl=1", "cache_size=64K",
                                "retries=3", "timeout=5"])
        assert m.argv[0] == tsan
        day = cold_day(model)
        check_readers(model, day, read_all(m.path, day, 8))
        check_readers(model, b"", read_all(m.path, b"", 8))
        time.sleep(1.2)  # listings expire: readers race their refresh
        check_readers(model, b"", read_all(m.path, b"", 8))
    finally:
        s3.set_faults([])
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr()
    mounter.unmount(m)
    assert "ThreadSanitizer" not in m.stderr(), m.stderr()[-8000:]
