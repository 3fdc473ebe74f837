"""A local directory that mirrors the bucket is a source like S3."""

import os

from conftest import assert_tree, walk

BUCKET = "local"


def test_local_mirror_equals_s3(s3, small_corpus, mounter):
    mirror, model = small_corpus
    local = mounter.mount(str(mirror))
    local_tree = walk(local.path)
    assert_tree(local_tree, model, uid=os.getuid(), gid=os.getgid())
    s3.seed(BUCKET, mirror)
    remote = mounter.mount("s3://" + BUCKET)
    remote_tree = walk(remote.path)
    assert sorted(local_tree) == sorted(remote_tree)
    for path, e in local_tree.items():
        r = remote_tree[path]
        for field in ("mode", "size", "mtime", "nlink", "content",
                      "children"):
            assert e.get(field) == r.get(field), (path, field)
        if "xattrs" in e:
            for name in ("user.wivaudit.key", "user.wivaudit.event_type"):
                assert e["xattrs"].get(name) == r["xattrs"].get(name), \
                    (path, name)


def test_local_mirror_needs_no_s3(small_corpus, mounter, tmp_path):
    """No endpoint and no credentials: a local source never asks for any."""
    mirror, model = small_corpus
    env = mounter.env(extra={"AWS_ACCESS_KEY_ID": None,
                             "AWS_SECRET_ACCESS_KEY": None})
    m = mounter.mount(str(mirror), env=env)
    assert_tree(walk(m.path), model)
