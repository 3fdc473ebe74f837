"""Bad input: the tree of a messy bucket is exactly the model's, and every
bad object is named in the daemon's log."""

import os

import pytest

import refmodel
from conftest import assert_tree, run, walk

BUCKET = "messy"


@pytest.fixture(scope="module")
def bucket(s3, messy_corpus):
    mirror, model = messy_corpus
    assert model.bad_keys and model.other_keys and model.plain_keys
    s3.seed(BUCKET, mirror)
    return mirror, model


def check_log(m, model):
    log = m.stderr()
    missing = [k for k in sorted(model.bad_keys) if k not in log]
    assert not missing, "bad keys not named in the log: %s\n%s" % (
        missing, log[-4000:])
    missing = [k for k in model.plain_keys if k not in log]
    assert not missing, "plain-JSON keys not warned about: %s" % missing
    missing = [k for k in model.skipped_elements if k not in log]
    assert not missing, "keys with skipped elements not logged: %s" % missing


def test_messy_bucket_from_s3(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    tree = walk(m.path)
    assert_tree(tree, model, uid=os.getuid(), gid=os.getgid())
    out = run(["find", m.path, "-type", "f", "-print0"]).stdout
    assert out.count(b"\0") == model.event_count()
    p = run(["sh", "-c", "find \"$1\" -type f -print0 | xargs -0 jq empty",
             "sh", m.path], check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    for path, f in model.files.items():
        if f.event_type is not None:
            assert tree[path]["xattrs"].get("user.wivaudit.event_type") == \
                f.event_type.encode(), path
        assert tree[path]["xattrs"].get("user.wivaudit.key") == \
            f.key.encode(), path
    mounter.unmount(m)
    check_log(m, model)


def test_messy_bucket_from_local_mirror(bucket, mounter):
    mirror, model = bucket
    m = mounter.mount(str(mirror))
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    check_log(m, model)


def test_messy_bucket_compact(s3, bucket, mounter):
    mirror, _model = bucket
    model = refmodel.Model(str(mirror), layout="compact")
    m = mounter.mount("s3://" + BUCKET, opts=["format=compact"])
    assert_tree(walk(m.path), model)
