"""Options that change the tree: prefix, format, window, uid/gid, and the
ways to name the source."""

import json
import os
import re

import pytest

import refmodel
from conftest import Mounter, S3Server, assert_tree, run, walk

BUCKET = "opts"
PREFIX = "audit/wiv/"


@pytest.fixture(scope="module")
def bucket(s3, small_corpus, messy_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
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


def test_prefix_without_trailing_slash(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://%s/%s" % (BUCKET, PREFIX.rstrip("/")))
    assert_tree(walk(m.path), model)


def test_wrong_region_is_followed(s3, bucket, mounter):
    """The test S3 answers a request signed for another region as S3 does
    (400 AuthorizationHeaderMalformed naming the bucket's region)."""
    _mirror, model = bucket
    mark = s3.mark()
    m = mounter.mount("s3://" + BUCKET, opts=["region=eu-west-1"])
    assert_tree(walk(m.path), model)
    assert any(r[4] == "AuthorizationHeaderMalformed"
               for r in s3.requests(mark))


@pytest.fixture(scope="module")
def tls_s3(tmp_path_factory, small_corpus):
    d = tmp_path_factory.mktemp("tls")
    key, cert = str(d / "key.pem"), str(d / "cert.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
    srv = S3Server(d / "s3", tls=(key, cert))
    srv.make_bucket(BUCKET)
    srv.sync(small_corpus[0], "s3://%s/" % BUCKET)
    yield srv
    srv.stop()


def test_https_with_cafile(tls_s3, small_corpus, tmp_path):
    _mirror, model = small_corpus
    mounter = Mounter(tmp_path, tls_s3)
    try:
        rc, err = mounter.mount_fails("s3://" + BUCKET)
        assert rc != 0
        assert re.search(r"certificate|SSL|TLS", err, re.I), err
        m = mounter.mount("s3://" + BUCKET, opts=["cafile=" + tls_s3.cafile])
        assert_tree(walk(m.path), model)
        mounter.unmount(m)
    finally:
        problems = mounter.cleanup()
    assert not problems, problems
