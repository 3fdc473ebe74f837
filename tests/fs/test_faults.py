"""S3 faults, injected by the test server: throttling, 5xx, dropped and cut
connections and slow answers are retried; a final failure reaches the
reader as EIO (EACCES for 403), never as a hang or a partial event file."""

import os
import time

import pytest

import refmodel
from conftest import assert_tree, generate, probe, run, walk

BUCKET = "faults"
# Small numbers keep a final failure quick: bounded by retries x timeout.
FAST = ["retries=3", "timeout=3"]


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory):
    # Fewer objects than the other tests: every one of them is retried.
    mirror = tmp_path_factory.mktemp("faults") / "mirror"
    generate(mirror, "--orgs", "2", "--days", "5", "--objects-per-day", "1",
             "--seed", "5")
    model = refmodel.Model(str(mirror))
    s3.seed(BUCKET, mirror)
    return mirror, model


@pytest.fixture(autouse=True)
def no_faults_after(s3):
    yield
    s3.set_faults([])


def test_throttling_and_5xx_are_retried(s3, bucket, mounter):
    """The first tries of every object and listing fail: 503 SlowDown, then
    500; the next one succeeds."""
    _mirror, model = bucket
    s3.set_faults([
        {"op": "get", "action": "status", "status": 503, "code": "SlowDown",
         "per_url": True, "times": 1},
        {"op": "get", "action": "status", "status": 500,
         "code": "InternalError", "per_url": True, "times": 1},
        {"op": "list", "action": "status", "status": 503,
         "code": "SlowDown", "per_url": True, "times": 2},
    ])
    mark = s3.mark()
    m = mounter.mount("s3://" + BUCKET, opts=FAST)
    assert_tree(walk(m.path), model)
    fired = s3.faults_fired(mark)
    assert len([r for r in fired if r[2] == "get"]) >= 2 * len(model.objects)


def test_dropped_and_cut_connections_are_retried(s3, bucket, mounter):
    _mirror, model = bucket
    s3.set_faults([
        {"op": "get", "action": "drop", "per_url": True, "times": 1},
        {"op": "get", "action": "truncate", "per_url": True, "times": 1},
        {"op": "list", "action": "drop", "per_url": True, "times": 1},
    ])
    mark = s3.mark()
    m = mounter.mount("s3://" + BUCKET, opts=FAST)
    assert_tree(walk(m.path), model)
    fired = s3.faults_fired(mark)
    assert len([r for r in fired if r[4] == "FAULT:truncate"]) == \
        len(model.objects)
    assert any(r[4] == "FAULT:drop" for r in fired)


def test_slow_answers_time_out_and_are_retried(s3, bucket, mounter):
    _mirror, model = bucket
    s3.set_faults([{"op": "get", "action": "delay", "delay_ms": 6000,
                    "times": 3}])
    mark = s3.mark()
    m = mounter.mount("s3://" + BUCKET, opts=["retries=3", "timeout=2"])
    assert_tree(walk(m.path, timeout=180), model)
    assert len([r for r in s3.faults_fired(mark)
                if r[4].startswith("FAULT:delay")]) == 3


def eventually(argv, want, timeout=30):
    """Runs argv until it prints `want` (a failure may be remembered for a
    few seconds, so S3 is not hammered); fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        p = run(argv, check=False, timeout=120)
        if p.returncode == 0 and p.stdout == want:
            return
        assert time.monotonic() < deadline, \
            "%s still fails %d s after S3 recovered: %s" % (
                " ".join(argv), timeout, p.stderr.decode(errors="replace"))
        time.sleep(0.5)


def one_event(model):
    path = sorted(model.files)[len(model.files) // 2]
    return path, path.rsplit(b"/", 1)[0]


def test_final_failure_is_eio_then_recovers(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=FAST)
    path, typedir = one_event(model)
    s3.set_faults([{"op": "get", "action": "status", "status": 500,
                    "code": "InternalError"}])
    full = os.path.join(m.path, os.fsdecode(path))
    p = run(["cat", full], check=False, timeout=120)
    assert p.returncode != 0 and p.stdout == b""
    assert b"Input/output error" in p.stderr, p.stderr
    p = run(["ls", os.path.join(m.path, os.fsdecode(typedir))], check=False,
            timeout=120)
    assert p.returncode != 0
    assert b"Input/output error" in p.stderr, p.stderr
    # Nothing half-read was kept: once S3 answers, everything is right.
    s3.set_faults([])
    eventually(["cat", full], model.files[path].content)
    assert_tree(walk(m.path), model)


def test_forbidden_object_is_eacces(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=FAST)
    path, typedir = one_event(model)
    s3.set_faults([{"op": "get", "action": "status", "status": 403,
                    "code": "AccessDenied", "message": "Access Denied"}])
    full = os.path.join(m.path, os.fsdecode(path))
    p = run(["cat", full], check=False, timeout=120)
    assert p.returncode != 0 and p.stdout == b""
    assert b"Permission denied" in p.stderr, p.stderr
    s3.set_faults([])
    eventually(["cat", full], model.files[path].content)


def test_truncated_body_never_served(s3, bucket, mounter):
    """Every answer cut short, repeatedly: the reader gets EIO or the whole
    event, never part of it."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=FAST)
    path, typedir = one_event(model)
    s3.set_faults([{"op": "get", "action": "truncate"}])
    res = probe("walk", os.path.join(m.path, os.fsdecode(typedir)),
                timeout=120)
    for rel, e in res.items():
        if "content" in e:
            want = model.files[typedir + b"/" + rel].content
            assert e["content"] == want, rel
    s3.set_faults([])
    eventually(["cat", os.path.join(m.path, os.fsdecode(path))],
               model.files[path].content)
    assert_tree(walk(m.path), model)
