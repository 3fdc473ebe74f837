"""Faults between the daemon and S3, injected by tests/s3/faultproxy.py:
throttling, 5xx, dropped and reset connections, bodies cut short, stalls,
a listing page failing after the first. Whatever happens, `find` and
`grep -r` must see exactly the reference model (nothing lost, duplicated or
partial), the retries must show in the proxy's log, and the cache must hold
only whole entries. A key that fails for good gives EIO (EACCES for a 403)
on its directory alone, within a bounded time, with one log line naming it.

The proxy keeps client connections alive, so faults also land on reused
connections.
"""

import os
import sys
import time

import pytest

import refmodel
from conftest import SRC, assert_tree, generate, run, walk

sys.path.insert(0, os.path.join(SRC, "tests", "s3"))
from faultproxy import FaultProxy  # noqa: E402

BUCKET = "faultproxy"
PAGES_BUCKET = "faultpages"
# Small values keep a fault cheap: a stall costs TIMEOUT seconds, and
# RETRIES leaves room for the two failures in a row most rules inject.
RETRIES = 4
TIMEOUT = 2
STEP_TIMEOUT = 60  # bound on any one find / grep / ls
ENV_C = dict(os.environ, LC_ALL="C")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults") / "mirror"
    generate(d, "--orgs", "2", "--days", "3", "--objects-per-day", "2",
             "--events-per-object", "4", "--seed", "23")
    return d


@pytest.fixture(scope="module")
def bucket(s3, corpus):
    s3.seed(BUCKET, corpus)
    return refmodel.Model(str(corpus))


@pytest.fixture(scope="module")
def proxy(s3, tmp_path_factory):
    fp = FaultProxy(s3.port, str(tmp_path_factory.mktemp("fp") / "faults.log"))
    yield fp
    fp.stop()


@pytest.fixture
def fp(proxy):
    """The proxy with no rule, before and after the test."""
    proxy.clear()
    yield proxy
    proxy.clear()


def mount(mounter, fp, bucket=BUCKET, extra=(), cache_dir=None):
    opts = ["endpoint=" + fp.endpoint, "retries=%d" % RETRIES,
            "timeout=%d" % TIMEOUT] + list(extra)
    return mounter.mount("s3://" + bucket, opts=opts, cache_dir=cache_dir,
                         endpoint=False)


# --- what find and grep -r see --------------------------------------------------

def find(root, *args):
    """({path: type letter} relative to root, CompletedProcess)."""
    p = run(["find", root, "-mindepth", "1"] + list(args) +
            ["-printf", r"%y %P\0"],
            check=False, timeout=STEP_TIMEOUT, env=ENV_C)
    out = {}
    for item in p.stdout.split(b"\0"):
        if item:
            out[item[2:]] = item[:1].decode()
    return out, p


def grep_all(root):
    """({path: content} of every file, as `grep -rHZ ''` prints it,
    CompletedProcess)."""
    p = run(["grep", "-rHZ", "", root], check=False, timeout=STEP_TIMEOUT,
            env=ENV_C)
    content = {}
    prefix = os.fsencode(root).rstrip(b"/") + b"/"
    for line in p.stdout.split(b"\n")[:-1]:
        path, sep, text = line.partition(b"\0")
        assert sep and path.startswith(prefix), line[:200]
        rel = path[len(prefix):]
        content[rel] = content.get(rel, b"") + text + b"\n"
    return content, p


def diff_tree(model, found, content, skip=()):
    """Differences between find/grep output and the model, ignoring paths
    under the directories in skip."""
    def skipped(p):
        return any(p == s or p.startswith(s + b"/") for s in skip)

    want = {p: "f" for p in model.files}
    want.update({p: "d" for p in model.dirs if p})
    want = {p: t for p, t in want.items() if not skipped(p)}
    found = {p: t for p, t in found.items() if not skipped(p)}
    content = {p: c for p, c in content.items() if not skipped(p)}
    diffs = []
    for p in sorted(set(want) - set(found))[:20]:
        diffs.append("find: missing %r" % p)
    for p in sorted(set(found) - set(want))[:20]:
        diffs.append("find: unexpected %r" % p)
    for p in sorted(set(want) & set(found)):
        if want[p] != found[p]:
            diffs.append("find: %r is %s, want %s" % (p, found[p], want[p]))
    files = {p for p, t in want.items() if t == "f"}
    for p in sorted(files - set(content))[:20]:
        diffs.append("grep: never read %r" % p)
    for p in sorted(set(content) - files)[:20]:
        diffs.append("grep: unexpected %r" % p)
    for p in sorted(files & set(content)):
        if content[p] != model.files[p].content:
            diffs.append("grep: %r differs from the model (%d bytes, want "
                         "%d; key %s)" % (p, len(content[p]),
                                          len(model.files[p].content),
                                          model.files[p].key))
    return diffs


def check_whole_tree(m, model):
    found, pf = find(m.path)
    content, pg = grep_all(m.path)
    diffs = diff_tree(model, found, content)
    assert pf.returncode == 0 and not pf.stderr, pf.stderr.decode()
    assert pg.returncode == 0 and not pg.stderr, pg.stderr.decode()
    assert not diffs, "\n".join(diffs)


def check_retried(fp, since, op, want_faults):
    """The proxy injected at least want_faults faults on op, and every key
    (or listing) that got one was later served whole."""
    log = fp.log(since)
    faults = [i for i, e in enumerate(log) if e["fault"] and e["op"] == op]
    assert len(faults) >= want_faults, \
        "only %d %s faults were injected" % (len(faults), op)
    for i in faults:
        e = log[i]
        later = [x for x in log[i + 1:] if x["op"] == op and
                 x["key"] == e["key"] and x["query"] == e["query"] and
                 not x["fault"] and x["status"] in (200, 206)]
        assert later, "after %s on %s %r?%s the daemon never asked " \
            "again" % (e["fault"], op, e["key"], e["query"])
    return [log[i] for i in faults]


def daemon_errors(m):
    return [ln for ln in m.stderr().splitlines()
            if "error" in ln.lower() or "warning" in ln.lower()]


def check_cache_whole(mounter, fp, m, model, extra=()):
    """Unmounts m and serves its cache offline: every entry written during
    the faults must be whole (a cut body must never have been cached)."""
    mounter.unmount(m)
    # The same endpoint: it is part of the cache's name for the source.
    off = mounter.mount("s3://" + BUCKET,
                        opts=["offline", "endpoint=" + fp.endpoint] +
                        list(extra),
                        cache_dir=m.cache_dir, endpoint=False)
    assert_tree(walk(off.path), model)
    mounter.unmount(off)


# --- the tests ----------------------------------------------------------------

def test_clean_passthrough(s3, bucket, fp, mounter):
    """No rule: the proxy is transparent (signatures, Range, keep-alive)."""
    m = mount(mounter, fp)
    check_whole_tree(m, bucket)
    assert fp.faults() == []
    assert not daemon_errors(m), m.stderr()


# Object GET faults: (rule, faults at least injected). per_key rules hit
# every object, so every download has to retry or resume.
GET_FAULTS = {
    "slowdown": dict(fault="slowdown", count=2, per_key=True),
    "internal": dict(fault="internal", count=1, per_key=True),
    "drop": dict(fault="drop", count=1, per_key=True),
    "reset_mid_body": dict(fault="reset", count=1, per_key=True),
    "reset_first_byte": dict(fault="reset", fraction=0.0, count=1,
                             per_key=True),
    "cut_short_of_length": dict(fault="cut", count=2, per_key=True),
    "cut_no_length": dict(fault="cut_close", count=1, per_key=True),
    "cut_matching_length": dict(fault="cut_length", count=1, per_key=True),
    "stall_before_headers": dict(fault="stall", count=2, stall_s=20),
    "stall_mid_body": dict(fault="stall_body", count=2, stall_s=20),
}


@pytest.mark.parametrize("kind", sorted(GET_FAULTS))
def test_object_faults(s3, bucket, fp, mounter, kind):
    rule = GET_FAULTS[kind]
    m = mount(mounter, fp)
    since = fp.mark()
    fp.add(op="get", **rule)
    t0 = time.monotonic()
    check_whole_tree(m, bucket)
    elapsed = time.monotonic() - t0
    want = rule["count"] if not rule.get("per_key") else \
        rule["count"] * len(bucket.objects)
    faults = check_retried(fp, since, "get", want)
    assert elapsed < 45, "took %.1f s" % elapsed
    if rule["fault"].startswith("stall"):
        # -o timeout= bounds how long a silent connection is waited for.
        log = fp.log(since)
        for f in faults:
            retry = next(e for e in log if e["key"] == f["key"] and
                         e["time"] > f["time"] and not e["fault"])
            waited = retry["time"] - f["time"]
            assert waited < TIMEOUT + 1.5, \
                "a stall was noticed after %.1f s with timeout=%d" % (
                    waited, TIMEOUT)
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr()
    errors = [ln for ln in daemon_errors(m) if "error" in ln.lower()]
    assert not errors, "a retried fault reached the log as a failure:\n" + \
        "\n".join(errors)
    check_cache_whole(mounter, fp, m, bucket)


LIST_FAULTS = {
    "slowdown": dict(fault="slowdown", count=2, per_key=True),
    "internal": dict(fault="internal", count=2, per_key=True),
    "reset": dict(fault="reset", count=1, per_key=True),
    "cut": dict(fault="cut", count=1, per_key=True),
    "stall": dict(fault="stall_body", count=1, stall_s=20),
}


@pytest.mark.parametrize("kind", sorted(LIST_FAULTS))
def test_listing_faults(s3, bucket, fp, mounter, kind):
    """A listing answered with a fault is asked again, and the tree comes
    out whole: the root listing fails before the mount is up, the org
    listings while walking."""
    since = fp.mark()
    fp.add(op="list", **LIST_FAULTS[kind])
    m = mount(mounter, fp)
    check_whole_tree(m, bucket)
    check_retried(fp, since, "list", 1)
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr()


# --- a listing of more than one page ------------------------------------------

@pytest.fixture(scope="module")
def pages_bucket(s3, tmp_path_factory):
    """One org with more than 1000 objects: its listing takes two pages."""
    d = tmp_path_factory.mktemp("pages") / "mirror"
    generate(d, "--orgs", "1", "--days", "345", "--objects-per-day", "1",
             "--events-per-object", "1", "--gaps", "0", "--seed", "5")
    model = refmodel.Model(str(d))
    assert len(model.objects) > 1000, len(model.objects)
    s3.seed(PAGES_BUCKET, d)
    return model


@pytest.mark.parametrize("fault", ["internal", "reset", "cut"])
def test_listing_fails_after_first_page(s3, pages_bucket, fp, mounter,
                                        fault):
    """Page 2 of the org listing (a request with a continuation token)
    fails; the retry must neither lose nor repeat the keys of either
    page. Listing levels read no object, so this stays cheap."""
    model = pages_bucket
    m = mount(mounter, fp, bucket=PAGES_BUCKET)
    since = fp.mark()
    fp.add(op="list", query="continuation-token", fault=fault, count=2)
    # Down to the type directories, not into them: no object is fetched.
    found, p = find(m.path, "-maxdepth", "5")
    dirs = {k for k, t in found.items() if t == "d"}
    assert dirs == {k for k in model.dirs if k}, \
        sorted(dirs ^ {k for k in model.dirs if k})[:20]
    assert p.returncode == 0, p.stderr.decode()
    faults = check_retried(fp, since, "list", 2)
    assert all("continuation-token" in e["query"] for e in faults)
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr()


# --- a key that fails for good ------------------------------------------------

# fault -> (what the reader sees, how many GETs with retries=2). A 403 on
# one key is not here: it costs only that object's events, not its
# directory (test_isolation.py).
PERMANENT = {
    "internal": (b"Input/output error", (3, 3)),
}


@pytest.mark.parametrize("fault", sorted(PERMANENT))
def test_permanent_failure_only_hits_its_directory(s3, bucket, corpus, fp,
                                                   mounter, fault):
    message, (least, most) = PERMANENT[fault]
    # W = 0: an object's events all land on its key day, and only that
    # day's listing needs it, so exactly one directory depends on the key.
    model = refmodel.Model(str(corpus), window=0)
    key, org, typ, ms = model.objects[len(model.objects) // 2]
    day = refmodel.utc_day(ms // 1000)
    bad = b"/".join([org.encode()] + list(day) + [typ.encode()])
    since = fp.mark()
    fp.add(op="get", key=key, fault=fault)
    m = mount(mounter, fp, extra=["window=0", "retries=2"])
    bad_dir = os.path.join(m.path, os.fsdecode(bad))

    # The first reader gets EIO, in bounded time.
    t0 = time.monotonic()
    p = run(["ls", bad_dir], check=False, timeout=STEP_TIMEOUT, env=ENV_C)
    elapsed = time.monotonic() - t0
    assert p.returncode != 0, "ls of the failing directory succeeded"
    assert message in p.stderr, p.stderr
    assert elapsed < 20, "the error took %.1f s" % elapsed
    tries = fp.faults(since, key=key)
    assert least <= len(tries) <= most, \
        "%d GETs of %s, want %d (retries=2)" % (len(tries), key, most)
    named = [ln for ln in m.stderr().splitlines() if key in ln]
    assert len(named) == 1, "want one log line naming %s:\n%s" % (
        key, m.stderr())

    # Everything else reads fine; only the failing directory errs.
    found, pf = find(m.path)
    content, pg = grep_all(m.path)
    assert not diff_tree(model, found, content, skip=[bad]), \
        "\n".join(diff_tree(model, found, content, skip=[bad]))
    for proc in (pf, pg):
        errs = [ln for ln in proc.stderr.decode().splitlines() if ln]
        assert errs, "no error reading %s" % bad_dir
        assert all(bad_dir in ln for ln in errs), "\n".join(errs)
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr()

    # Once S3 answers again the directory is whole, no half-written cache
    # entry in the way. The daemon remembers a failed download for a few
    # seconds (so a burst of readers does not each retry it): poll.
    fp.clear()
    deadline = time.monotonic() + 15
    while True:
        p = run(["ls", bad_dir], check=False, timeout=STEP_TIMEOUT,
                env=ENV_C)
        if p.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert p.returncode == 0, "still failing 15 s after the fault ended: " \
        + p.stderr.decode()
    check_whole_tree(m, model)
    check_cache_whole(mounter, fp, m, model, extra=["window=0"])
