"""Options that change the tree: prefix, format, window, uid/gid, and the
ways to name the source."""

import json
import os

import pytest

import refmodel
from conftest import assert_tree, walk

BUCKET = "opts"
PREFIX = "audit/wiv/"


@pytest.fixture(scope="module")
def bucket(s3, small_corpus, messy_corpus):
    mirror, model = small_corpus
    s3.make_bucket(BUCKET)
    s3.sync(mirror, "s3://%s/" % BUCKET)
    # The same logs under a prefix, next to other logs that must not show.
    s3.sync(mirror, "s3://%s/%s" % (BUCKET, PREFIX))
    s3.sync(messy_corpus[0], "s3://%s/audit/other/" % BUCKET)
    return mirror, model


@pytest.mark.parametrize("how", ["url", "option"])
def test_prefix(s3, bucket, mounter, how):
    mirror, model = bucket
    if how == "url":
        m = mounter.mount("s3://%s/%s" % (BUCKET, PREFIX))
    else:
        m = mounter.mount("s3://" + BUCKET, opts=["prefix=" + PREFIX])
    tree = walk(m.path)
    assert_tree(tree, model)
    path, f = sorted(model.files.items())[0]
    assert tree[path]["xattrs"].get("user.wivaudit.key") == \
        (PREFIX + f.key).encode()


def test_compact_format(s3, bucket, mounter):
    mirror, _model = bucket
    model = refmodel.Model(str(mirror), layout="compact")
    m = mounter.mount("s3://" + BUCKET, opts=["format=compact"])
    assert_tree(walk(m.path), model)


def test_window(s3, bucket, mounter):
    """A 100 s window: most created_at (2..600 s before the key) no longer
    qualify, and those events take the key's day and time."""
    mirror, _model = bucket
    model = refmodel.Model(str(mirror), window=100)
    default = refmodel.Model(str(mirror))
    changed = [p for p, f in model.files.items()
               if p not in default.files or default.files[p].mtime != f.mtime]
    assert len(changed) > 10
    m = mounter.mount("s3://" + BUCKET, opts=["window=100"])
    assert_tree(walk(m.path), model)


def test_uid_gid(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=["uid=1234", "gid=5678"])
    assert_tree(walk(m.path, content=False), model, content=False, uid=1234,
                gid=5678)


def test_bare_bucket_name(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount(BUCKET, opts=["endpoint=" + s3.endpoint])
    assert_tree(walk(m.path), model)


def test_bucket_from_config_file(s3, bucket, mounter, tmp_path):
    _mirror, model = bucket
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"bucket_name": BUCKET, "external_id": "x"}))
    m = mounter.mount(None, env=mounter.env(extra={
        "WIVAUDIT_CONFIG": str(cfg)}))
    assert_tree(walk(m.path), model)


def test_mount_option_noise_is_ignored(s3, bucket, mounter):
    """Options mount(8) and fstab pass along are accepted and ignored."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET,
                      opts=["_netdev", "nofail", "noauto",
                            "x-systemd.automount"])
    assert sorted(os.listdir(os.fsencode(m.path))) == model.listdir(b"")
