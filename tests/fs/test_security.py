"""Secrets and permissions.

Secrets (the secret key, the session token, a web identity token and the
credentials STS hands out for it) never reach the daemon's log, even with
-d and even when S3 refuses a request, nor its command line or the cache.
The mount is private by default; with allow_other the kernel enforces the
modes, and umask= makes a tree only its owner may read.

The S3 of this module demands a random secret and session token, so a
mount can only work if the daemon really used them.
"""

import http.server
import os
import shutil
import tempfile
import threading
import urllib.parse

import pytest

import refmodel
from conftest import (S3Server, _mounter_fixture, assert_tree, generate, run,
                      walk)

BUCKET = "security"
SECRET = "wivSecretKey/" + os.urandom(12).hex()
SESSION_TOKEN = "wivSessionToken/" + os.urandom(16).hex() + "+="
WEB_TOKEN = "eyJ.wivWebIdentity." + os.urandom(16).hex()
ROLE = "arn:aws:iam::123456789012:role/wiv-audit-reader"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
NOBODY = 65534
OTHER = 65533  # a uid that owns nothing


def secret_forms():
    """Each secret as it could be written: raw and URL-encoded."""
    forms = set()
    for s in (SECRET, SESSION_TOKEN, WEB_TOKEN):
        forms.add(s.encode())
        forms.add(urllib.parse.quote(s, safe="").encode())
    return forms


def assert_no_secret(data, where):
    leaked = [s for s in secret_forms() if s in data]
    assert not leaked, "%s shows a secret: %r" % (where, leaked)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("security") / "mirror"
    generate(d, "--orgs", "2", "--days", "3", "--objects-per-day", "1",
             "--events-per-object", "3", "--seed", "31")
    return d, refmodel.Model(str(d))


@pytest.fixture(scope="module")
def s3(tmp_path_factory, corpus):
    srv = S3Server(tmp_path_factory.mktemp("s3sec"), secret=SECRET,
                   token=SESSION_TOKEN)
    srv.aws("s3", "mb", "s3://" + BUCKET, secret=SECRET)
    srv.aws("s3", "sync", str(corpus[0]), "s3://%s/" % BUCKET,
            "--only-show-errors", secret=SECRET)
    yield srv
    srv.stop()


@pytest.fixture
def open_mounter(s3):
    """A mounter whose mount points other users can reach: pytest's own
    temporary directories are 0700, which would hide the mount from them
    whatever the mount allows."""
    d = tempfile.mkdtemp(prefix="wiv-security-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield from _mounter_fixture(d, s3)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def creds_env(mounter):
    return mounter.env(secret=SECRET,
                       extra={"AWS_SESSION_TOKEN": SESSION_TOKEN})


def check_cmdline(m):
    """The running daemon's command line."""
    with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
        assert_no_secret(f.read(), "/proc/PID/cmdline")


def check_after_unmount(m):
    """The whole log of the unmounted daemon, and every file of its cache."""
    assert_no_secret(m.stderr().encode(), "the daemon's log")
    for root, _dirs, names in os.walk(m.cache_dir):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                assert_no_secret(f.read(), "cache file " + n)


# --- secrets ----------------------------------------------------------------

def test_secrets_stay_out_of_debug_log_and_cmdline(s3, corpus, mounter):
    """-d logs every request and every retry (each object is throttled
    once): none of them shows the secret key or the session token."""
    _mirror, model = corpus
    s3.set_faults([{"op": "get", "action": "status", "status": 503,
                    "code": "SlowDown", "per_url": True, "times": 1}])
    try:
        m = mounter.mount("s3://" + BUCKET, args=["-d"],
                          opts=["retries=2", "timeout=5"],
                          env=creds_env(mounter))
        check_cmdline(m)
        assert_tree(walk(m.path), model)
    finally:
        s3.set_faults([])
    mounter.unmount(m)
    assert "trying again" in m.stderr(), \
        "-d logged no retry:\n" + m.stderr()[-2000:]
    check_after_unmount(m)


def test_secrets_stay_out_of_refused_requests(s3, corpus, mounter):
    """S3 refuses every object: the reader gets EACCES, the log names the
    key and S3's message, not the credentials."""
    _mirror, model = corpus
    m = mounter.mount("s3://" + BUCKET, args=["-d"],
                      opts=["retries=1", "timeout=5"],
                      env=creds_env(mounter))
    path = sorted(model.files)[0]
    s3.set_faults([{"op": "get", "action": "status", "status": 403,
                    "code": "AccessDenied", "message": "Access Denied"}])
    try:
        p = run(["cat", os.path.join(m.path, os.fsdecode(path))],
                check=False, timeout=60)
    finally:
        s3.set_faults([])
    assert p.returncode != 0 and b"Permission denied" in p.stderr, p.stderr
    check_cmdline(m)
    mounter.unmount(m)
    assert model.files[path].key in m.stderr()
    check_after_unmount(m)


def test_wrong_secret_with_token_not_echoed(s3, mounter):
    """S3's SignatureDoesNotMatch answer echoes the canonical request, and
    with it the session token: the daemon must not pass that on."""
    wrong = "wivWrongSecret/" + os.urandom(8).hex()
    rc, err = mounter.mount_fails(
        "s3://" + BUCKET, args=["-d"],
        env=mounter.env(secret=wrong,
                        extra={"AWS_SESSION_TOKEN": SESSION_TOKEN}))
    assert rc != 0
    assert "signature" in err.lower() or "credentials" in err.lower(), err
    assert_no_secret(err.encode(), "the failed mount's output")
    assert wrong not in err


class FakeSTS(http.server.BaseHTTPRequestHandler):
    """AssumeRoleWithWebIdentity for WEB_TOKEN, handing out SECRET and
    SESSION_TOKEN."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        q = urllib.parse.parse_qs(self.rfile.read(n).decode())
        q.update(urllib.parse.parse_qs(urllib.parse.urlsplit(
            self.path).query))
        ok = q.get("Action") == ["AssumeRoleWithWebIdentity"] and \
            q.get("WebIdentityToken") == [WEB_TOKEN] and \
            q.get("RoleArn") == [ROLE]
        self.server.calls += 1
        a = "AssumeRoleWithWebIdentity"
        body = ("""<%sResponse xmlns="%s"><%sResult><Credentials>
<AccessKeyId>S3RVER</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>
<SessionToken>%s</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>
</Credentials></%sResult></%sResponse>""" % (
            a, STS_NS, a, SECRET, SESSION_TOKEN, a, a)) if ok else \
            ("""<ErrorResponse xmlns="%s"><Error><Code>InvalidIdentityToken
</Code><Message>bad token</Message></Error></ErrorResponse>""" % STS_NS)
        data = body.encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


@pytest.fixture
def sts():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeSTS)
    srv.calls = 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


def test_web_identity_secrets_stay_out_of_log(s3, corpus, mounter, sts,
                                              tmp_path):
    _mirror, model = corpus
    tok = tmp_path / "web-token"
    tok.write_text(WEB_TOKEN)
    env = mounter.env(extra={"AWS_ACCESS_KEY_ID": None,
                             "AWS_SECRET_ACCESS_KEY": None,
                             "AWS_ENDPOINT_URL_STS": sts.url,
                             "AWS_ROLE_ARN": ROLE,
                             "AWS_WEB_IDENTITY_TOKEN_FILE": str(tok)})
    m = mounter.mount("s3://" + BUCKET, args=["-d"], env=env)
    check_cmdline(m)
    assert_tree(walk(m.path), model)
    assert sts.calls >= 1
    mounter.unmount(m)
    assert "web identity" in m.stderr().lower() or \
        "sts" in m.stderr().lower(), m.stderr()[-2000:]
    check_after_unmount(m)


# --- permissions ------------------------------------------------------------

def as_user(uid, argv):
    """argv run as uid (group uid too, no supplementary groups)."""
    return run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                "--clear-groups"] + argv, check=False, timeout=60)


def mount_options(path):
    """The options the kernel shows for the mount at path."""
    p = run(["findmnt", "-n", "-o", "OPTIONS", "-M", path])
    return set(p.stdout.decode().strip().split(","))


def one_file(model, mnt):
    path = sorted(model.files)[0]
    return os.path.join(mnt, os.fsdecode(path)), model.files[path].content


def test_private_by_default(s3, corpus, open_mounter):
    _mirror, model = corpus
    m = open_mounter.mount("s3://" + BUCKET, env=creds_env(open_mounter))
    full, content = one_file(model, m.path)
    assert open(full, "rb").read() == content
    for argv in (["ls", m.path], ["stat", m.path], ["cat", full]):
        p = as_user(NOBODY, argv)
        assert p.returncode != 0 and b"Permission denied" in p.stderr, \
            (argv, p.stdout, p.stderr)
    assert "allow_other" not in mount_options(m.path)


def test_allow_other_lets_others_read(s3, corpus, open_mounter):
    _mirror, model = corpus
    m = open_mounter.mount("s3://" + BUCKET, opts=["allow_other"],
                           env=creds_env(open_mounter))
    full, content = one_file(model, m.path)
    p = as_user(NOBODY, ["cat", full])
    assert p.returncode == 0 and p.stdout == content, p.stderr
    p = as_user(NOBODY, ["ls", m.path])
    assert p.returncode == 0 and p.stdout.split() == \
        [n for n in model.listdir(b"")], p.stderr
    assert {"allow_other", "default_permissions"} <= mount_options(m.path)


def test_umask_makes_tree_owner_only(s3, corpus, open_mounter):
    """allow_other,umask=0277: files 0400 and directories 0500 of the owner
    (here NOBODY), enforced by the kernel: the owner reads, another uid gets
    EACCES on the file and on the directories."""
    _mirror, model = corpus
    m = open_mounter.mount("s3://" + BUCKET,
                           opts=["allow_other", "umask=0277",
                                 "uid=%d" % NOBODY, "gid=%d" % NOBODY],
                           env=creds_env(open_mounter))
    full, content = one_file(model, m.path)
    st = os.stat(full)
    assert (st.st_mode & 0o7777, st.st_uid) == (0o400, NOBODY)
    assert os.stat(os.path.dirname(full)).st_mode & 0o7777 == 0o500
    p = as_user(NOBODY, ["cat", full])
    assert p.returncode == 0 and p.stdout == content, p.stderr
    for argv in (["cat", full], ["ls", m.path]):
        p = as_user(OTHER, argv)
        assert p.returncode != 0 and b"Permission denied" in p.stderr, \
            (argv, p.stdout, p.stderr)
    # The whole tree still matches the model, modes aside.
    assert_tree(walk(m.path, content=False), model, content=False,
                check_modes=False, uid=NOBODY, gid=NOBODY)


def test_umask_as_root_owner(s3, corpus, open_mounter):
    """Owned by the mounting user (root): other users cannot read a 0400
    file, root (the owner) can."""
    _mirror, model = corpus
    m = open_mounter.mount("s3://" + BUCKET,
                           opts=["allow_other", "umask=0277"],
                           env=creds_env(open_mounter))
    full, content = one_file(model, m.path)
    assert os.stat(full).st_mode & 0o7777 == 0o400
    assert open(full, "rb").read() == content
    p = as_user(NOBODY, ["cat", full])
    assert p.returncode != 0 and b"Permission denied" in p.stderr, p.stderr
