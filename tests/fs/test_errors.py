"""Start-up failures: each is reported on the terminal before mounting, with
a non-zero status, and leaves nothing mounted."""

import os
import re
import socket

import pytest

BUCKET = "errors"
WRONG_SECRET = "WrongSecret-q7Zx9"


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, _model = small_corpus
    s3.seed(BUCKET, mirror)
    return BUCKET


def test_wrong_secret_fails_before_mounting(s3, bucket, mounter):
    mark = s3.mark()
    rc, err = mounter.mount_fails("s3://" + bucket,
                                  env=mounter.env(secret=WRONG_SECRET))
    assert rc != 0
    assert re.search(r"access denied|signature", err, re.I), err
    assert WRONG_SECRET not in err
    refused = [r for r in s3.requests(mark) if r[1] == 403]
    assert refused, "the daemon never reached the server"


def test_unknown_access_key_fails(s3, bucket, mounter):
    rc, err = mounter.mount_fails("s3://" + bucket,
                                  env=mounter.env(access_key="AKIAUNKNOWN"))
    assert rc != 0
    assert re.search(r"access denied|access key|InvalidAccessKeyId", err,
                     re.I), err


def test_no_such_bucket(s3, bucket, mounter):
    rc, err = mounter.mount_fails("s3://no-such-bucket-here")
    assert rc != 0
    assert re.search(r"no.?such.?bucket|does not exist|not found", err,
                     re.I), err
    assert "no-such-bucket-here" in err


def test_unknown_option_is_one_clear_line(s3, bucket, mounter):
    rc, err = mounter.mount_fails("s3://" + bucket, opts=["bogus=1"])
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "bogus" in lines[0]


@pytest.mark.parametrize("opt", ["window=abc", "format=fancy",
                                 "cache_size=12Q", "parallel=0", "readahead=400",
                                 "umask=0999"])
def test_bad_option_values(s3, bucket, mounter, opt):
    rc, err = mounter.mount_fails("s3://" + bucket, opts=[opt])
    assert rc != 0
    assert opt.split("=")[0] in err, err


def test_missing_mountpoint(s3, bucket, mounter, tmp_path):
    from conftest import daemon_bin, run
    missing = str(tmp_path / "does-not-exist")
    p = run([daemon_bin(), "s3://" + bucket, missing, "-f", "-o",
             "endpoint=%s,cache_dir=%s" % (s3.endpoint, tmp_path / "c")],
            check=False, timeout=30, env=mounter.env())
    assert p.returncode != 0
    assert p.stderr.strip(), "no message"


def test_missing_local_source(mounter, tmp_path):
    rc, err = mounter.mount_fails(str(tmp_path / "no-such-mirror"))
    assert rc != 0
    assert "no-such-mirror" in err


def test_unreachable_endpoint(s3, mounter):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, err = mounter.mount_fails(
        "s3://" + BUCKET, endpoint=False, timeout=90,
        opts=["endpoint=http://127.0.0.1:%d" % port, "retries=1",
              "timeout=3"])
    assert rc != 0
    assert err.strip()


def test_secret_never_logged_even_with_debug(s3, bucket, mounter):
    secret = "Sekr1t-" + os.urandom(4).hex()
    rc, err = mounter.mount_fails("s3://" + bucket, args=["-d"],
                                  env=mounter.env(secret=secret))
    assert rc != 0
    assert secret not in err
