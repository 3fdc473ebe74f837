"""Credentials from the AWS default chain, against an S3 that demands the
session token of temporary credentials.

A small local endpoint stands in for STS (AssumeRole, whose SigV4 signature
it checks with botocore, and AssumeRoleWithWebIdentity), the ECS container
credentials endpoint and EC2's IMDSv2.
"""

import datetime
import hashlib
import http.server
import json
import os
import re
import threading
import urllib.parse

import pytest

from conftest import SECRET, S3Server, assert_tree, run, walk

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    SigV4Auth = None

BUCKET = "creds"
TOKEN = "FwoGZXIvYXdzEXAMPLEtoken/+="
SRC_KEY, SRC_SECRET = "AKIASOURCEKEY", "source-secret-9x"
ROLE = "arn:aws:iam::123456789012:role/wiv-audit-reader"
EXTERNAL_ID = "wiv-external-id-42"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.web-identity.sig"
ECS_AUTH = "ecs-auth-token-7"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SSO_TOKEN = "aoaAAAAAGsso-access-token-fs/+="


def expiration(minutes=60):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sts_xml(action):
    return ("""<%(a)sResponse xmlns="%(ns)s">
  <%(a)sResult>
    <Credentials>
      <AccessKeyId>S3RVER</AccessKeyId>
      <SecretAccessKey>%(s)s</SecretAccessKey>
      <SessionToken>%(t)s</SessionToken>
      <Expiration>%(e)s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:wiv</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/wiv-audit-reader/wiv</Arn>
    </AssumedRoleUser>
  </%(a)sResult>
  <ResponseMetadata><RequestId>c0ffee</RequestId></ResponseMetadata>
</%(a)sResponse>
""" % {"a": action, "t": TOKEN, "e": expiration(), "ns": STS_NS,
       "s": SECRET}).encode()


def sts_error(code, msg):
    return ("""<ErrorResponse xmlns="%s">
  <Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>
  <RequestId>c0ffee</RequestId>
</ErrorResponse>
""" % (STS_NS, code, msg)).encode()


def sigv4_ok(handler, body, access_key, secret):
    """Recomputes the request's SigV4 signature with botocore."""
    auth = handler.headers.get("Authorization", "")
    m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/"
                 r"([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?"
                 r"Signature=([0-9a-f]+)$", auth)
    if not m or m.group(1) != access_key or SigV4Auth is None:
        return False
    region, service, signed = m.group(3), m.group(4), m.group(5).split(";")
    headers = {h: handler.headers[h] for h in signed if h in handler.headers}
    host = handler.headers.get("Host")
    req = AWSRequest(method=handler.command,
                     url="http://%s%s" % (host, handler.path), data=body,
                     headers=headers)
    req.context["timestamp"] = handler.headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(req)
    sig = signer.signature(signer.string_to_sign(req, canonical), req)
    return sig == m.group(6)


class CredHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        self.server.calls.append(("PUT", self.path))
        body = self.body()
        del body
        if self.path == "/latest/api/token" and \
                self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, b"imds-session-token", "text/plain")
        self.reply(403, b"", "text/plain")

    def do_GET(self):
        self.server.calls.append(("GET", self.path))
        if self.path.startswith("/latest/"):
            if self.headers.get("X-aws-ec2-metadata-token") != \
                    "imds-session-token":
                return self.reply(401, b"", "text/plain")
            base = "/latest/meta-data/iam/security-credentials/"
            if self.path == base:
                return self.reply(200, b"wiv-role", "text/plain")
            if self.path == base + "wiv-role":
                return self.reply(200, json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC",
                    "AccessKeyId": "S3RVER", "SecretAccessKey": SECRET,
                    "Token": TOKEN, "Expiration": expiration(),
                    "LastUpdated": expiration(-1)}).encode(),
                    "application/json")
            return self.reply(404, b"", "text/plain")
        if self.path == "/ecs-creds":
            if self.headers.get("Authorization") != ECS_AUTH:
                return self.reply(401, b"", "text/plain")
            return self.reply(200, json.dumps({
                "AccessKeyId": "S3RVER", "SecretAccessKey": SECRET,
                "Token": TOKEN, "Expiration": expiration(),
                "RoleArn": ROLE}).encode(), "application/json")
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/federation/credentials":
            return self.sso(q)
        self.sts(q, b"")

    def sso(self, q):
        """IAM Identity Center's GetRoleCredentials."""
        if self.headers.get("x-amz-sso_bearer_token") != SSO_TOKEN:
            return self.reply(401, json.dumps({
                "message": "Session token not found or invalid"}).encode(),
                "application/json")
        if q.get("account_id") != ["123456789012"] or \
                q.get("role_name") != ["AuditReader"]:
            return self.reply(403, b'{"message": "No access"}',
                              "application/json")
        exp = datetime.datetime.now(datetime.timezone.utc) + \
            datetime.timedelta(hours=1)
        return self.reply(200, json.dumps({"roleCredentials": {
            "accessKeyId": "S3RVER", "secretAccessKey": SECRET,
            "sessionToken": TOKEN,
            "expiration": int(exp.timestamp() * 1000)}}).encode(),
            "application/json")

    def do_POST(self):
        self.server.calls.append(("POST", self.path))
        body = self.body()
        q = urllib.parse.parse_qs(body.decode())
        q.update(urllib.parse.parse_qs(urllib.parse.urlsplit(
            self.path).query))
        self.sts(q, body)

    def sts(self, q, body):
        one = {k: v[0] for k, v in q.items()}
        self.server.sts_params.append(one)
        action = one.get("Action")
        if one.get("RoleArn") != ROLE:
            return self.reply(403, sts_error("AccessDenied", "wrong role"))
        if action == "AssumeRoleWithWebIdentity":
            if one.get("WebIdentityToken") != WEB_TOKEN:
                return self.reply(400, sts_error("InvalidIdentityToken",
                                                 "bad token"))
            return self.reply(200, sts_xml(action))
        if action == "AssumeRole":
            if not sigv4_ok(self, body, SRC_KEY, SRC_SECRET):
                return self.reply(403, sts_error("SignatureDoesNotMatch",
                                                 "signature mismatch"))
            if one.get("ExternalId") != EXTERNAL_ID:
                return self.reply(403, sts_error("AccessDenied",
                                                 "external id"))
            return self.reply(200, sts_xml(action))
        self.reply(400, sts_error("InvalidAction", "unknown action"))


@pytest.fixture(scope="module")
def credserver():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CredHandler)
    srv.calls = []
    srv.sts_params = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory, small_corpus):
    """This module's S3 accepts only the temporary credentials' token."""
    srv = S3Server(tmp_path_factory.mktemp("s3tok"), token=TOKEN)
    srv.make_bucket(BUCKET)
    srv.sync(small_corpus[0], "s3://%s/" % BUCKET)
    yield srv
    srv.stop()


NO_ENV_CREDS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                "AWS_SESSION_TOKEN": None}


def mount_and_check(mounter, model, env, opts=()):
    m = mounter.mount("s3://" + BUCKET, env=env, opts=opts)
    assert_tree(walk(m.path, content=False), model, content=False)
    return m


def test_session_token_from_environment(s3, small_corpus, mounter):
    env = mounter.env(extra={"AWS_SESSION_TOKEN": TOKEN})
    mount_and_check(mounter, small_corpus[1], env)


def test_missing_session_token_is_refused(s3, small_corpus, mounter):
    rc, err = mounter.mount_fails("s3://" + BUCKET, env=mounter.env())
    assert rc != 0
    assert TOKEN not in err


def write_files(mounter, creds="", config=""):
    with open(mounter.aws_creds, "w") as f:
        f.write(creds)
    with open(mounter.aws_config, "w") as f:
        f.write(config)


@pytest.mark.parametrize("how", ["option", "AWS_PROFILE", "default"])
def test_shared_credentials_file(s3, small_corpus, mounter, how):
    profile = "default" if how == "default" else "audit"
    write_files(mounter, creds="[other]\naws_access_key_id = nope\n"
                "aws_secret_access_key = nope\n\n[%s]\n"
                "aws_access_key_id = S3RVER\naws_secret_access_key = %s\n"
                "aws_session_token = %s\n" % (profile, SECRET, TOKEN))
    extra = dict(NO_ENV_CREDS)
    opts = []
    if how == "option":
        opts = ["profile=audit"]
    elif how == "AWS_PROFILE":
        extra["AWS_PROFILE"] = "audit"
    mount_and_check(mounter, small_corpus[1], mounter.env(extra=extra), opts)


def test_credentials_in_config_file(s3, small_corpus, mounter):
    write_files(mounter, config="[profile audit]\nregion = us-east-1\n"
                "aws_access_key_id = S3RVER\naws_secret_access_key = %s\n"
                "aws_session_token = %s\n" % (SECRET, TOKEN))
    env = mounter.env(extra=dict(NO_ENV_CREDS, AWS_PROFILE="audit"))
    mount_and_check(mounter, small_corpus[1], env)


def test_unknown_profile_fails_clearly(s3, mounter):
    write_files(mounter, creds="[audit]\naws_access_key_id = S3RVER\n"
                "aws_secret_access_key = %s\n" % SECRET)
    rc, err = mounter.mount_fails("s3://" + BUCKET,
                                  env=mounter.env(extra=NO_ENV_CREDS),
                                  opts=["profile=no-such-profile"])
    assert rc != 0
    assert "no-such-profile" in err


def test_assume_role_with_external_id(s3, small_corpus, mounter,
                                      credserver):
    write_files(mounter, creds="[base]\naws_access_key_id = %s\n"
                "aws_secret_access_key = %s\n" % (SRC_KEY, SRC_SECRET),
                config="[profile audit]\nrole_arn = %s\nsource_profile = base"
                "\nexternal_id = %s\nregion = us-east-1\n" % (ROLE,
                                                             EXTERNAL_ID))
    n = len(credserver.sts_params)
    env = mounter.env(extra=dict(NO_ENV_CREDS,
                                 AWS_ENDPOINT_URL_STS=credserver.url))
    m = mount_and_check(mounter, small_corpus[1], env, ["profile=audit"])
    calls = credserver.sts_params[n:]
    assert any(c.get("Action") == "AssumeRole" for c in calls), calls
    mounter.unmount(m)
    for secret in (SRC_SECRET, TOKEN):
        assert secret not in m.stderr()


def test_web_identity(s3, small_corpus, mounter, credserver, tmp_path):
    tok = tmp_path / "token"
    tok.write_text(WEB_TOKEN)
    n = len(credserver.sts_params)
    env = mounter.env(extra=dict(NO_ENV_CREDS,
                                 AWS_ENDPOINT_URL_STS=credserver.url,
                                 AWS_ROLE_ARN=ROLE,
                                 AWS_WEB_IDENTITY_TOKEN_FILE=str(tok),
                                 AWS_ROLE_SESSION_NAME="wiv-test"))
    mount_and_check(mounter, small_corpus[1], env)
    calls = credserver.sts_params[n:]
    assert any(c.get("Action") == "AssumeRoleWithWebIdentity"
               for c in calls), calls


def test_ecs_container_credentials(s3, small_corpus, mounter, credserver):
    n = len(credserver.calls)
    env = mounter.env(extra=dict(
        NO_ENV_CREDS,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=credserver.url + "/ecs-creds",
        AWS_CONTAINER_AUTHORIZATION_TOKEN=ECS_AUTH))
    mount_and_check(mounter, small_corpus[1], env)
    assert ("GET", "/ecs-creds") in credserver.calls[n:]


def test_ec2_instance_metadata_v2(s3, small_corpus, mounter, credserver):
    n = len(credserver.calls)
    env = mounter.env(extra=dict(
        NO_ENV_CREDS, AWS_EC2_METADATA_DISABLED=None,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=credserver.url))
    mount_and_check(mounter, small_corpus[1], env)
    assert ("PUT", "/latest/api/token") in credserver.calls[n:]


def test_sso_session_profile(s3, small_corpus, mounter, credserver):
    """A profile from `aws configure sso`, its token from `aws sso login`'s
    cache; the token shows nowhere, not even with -d."""
    write_files(mounter, config="[profile audit]\nsso_session = corp\n"
                "sso_account_id = 123456789012\nsso_role_name = AuditReader\n"
                "\n[sso-session corp]\n"
                "sso_start_url = https://corp-example.awsapps.com/start\n"
                "sso_region = us-east-1\n")
    cache = os.path.join(mounter.home, ".aws", "sso", "cache")
    os.makedirs(cache, exist_ok=True)
    token_file = os.path.join(cache, hashlib.sha1(b"corp").hexdigest() +
                              ".json")
    with open(token_file, "w") as f:
        json.dump({"accessToken": SSO_TOKEN, "expiresAt": expiration(),
                   "region": "us-east-1",
                   "startUrl": "https://corp-example.awsapps.com/start"}, f)
    env = mounter.env(extra=dict(NO_ENV_CREDS,
                                 AWS_ENDPOINT_URL_SSO=credserver.url))
    m = mounter.mount("s3://" + BUCKET, env=env, opts=["profile=audit"],
                      args=["-d"])
    assert_tree(walk(m.path, content=False), small_corpus[1], content=False)
    err = m.stderr()
    assert "IAM Identity Center (SSO) profile audit (sso-session corp)" \
        in err
    assert SSO_TOKEN not in err and TOKEN not in err
    mounter.unmount(m)
    assert SSO_TOKEN not in m.stderr()

    p = run([os.environ["WIVAUDIT_CLI"], "doctor", "s3://" + BUCKET, "-o",
             "endpoint=%s,profile=audit" % s3.endpoint], env=env,
            check=False, timeout=60)
    out = (p.stdout + p.stderr).decode()
    assert "IAM Identity Center (SSO)" in out, out
    assert SSO_TOKEN not in out

    os.remove(token_file)
    rc, err = mounter.mount_fails("s3://" + BUCKET, env=env,
                                  opts=["profile=audit"])
    assert rc == 1
    assert "aws sso login --profile audit" in err, err
