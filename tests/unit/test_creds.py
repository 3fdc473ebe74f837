"""The AWS credential chain, region following and TLS, end to end.

creds_probe (tests/unit/creds_probe.c) resolves credentials with the real C
chain and prints the source, the key id and SHA-256 hashes of the secret and
token. Fake endpoints on 127.0.0.1 speak the real wire formats: IMDSv2,
the ECS container endpoint, STS AssumeRoleWithWebIdentity and AssumeRole
(whose SigV4 signature is recomputed with botocore, AWS's own signer), and a
small S3 that answers ListObjectsV2, redirects to its region and speaks
HTTPS with a certificate from a throw-away CA.
"""

import datetime
import hashlib
import http.server
import json
import os
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

PROBE = os.environ.get("CREDS_PROBE")
if not PROBE:
    pytest.skip("CREDS_PROBE is not set (run through meson test)",
                allow_module_level=True)

try:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:  # pragma: no cover - Debian's python3-botocore
    SigV4Auth = None

ENV_ID, ENV_SECRET = "AKIAENVEXAMPLE", "env/secret+Key0000000000000000000000000"
FILE_ID, FILE_SECRET = "AKIAFILEEXAMPLE", "file/secret+Key000000000000000000000000"
SRC_ID, SRC_SECRET = "AKIASOURCEEXAMPLE", "src/secret+Key0000000000000000000000000"
SRC_TOKEN = "source-session-token/with+slashes=="
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.web-identity-jwt.c2lnbmF0dXJl"
ECS_AUTH = "ecs-authorization-token-0123456789"
ROLE_ARN = "arn:aws:iam::123456789012:role/wiv-audit-reader"
SSO_TOKEN = "aoaAAAAAGsso-access-token/with+slashes=="
SSO_START = "https://corp-example.awsapps.com/start"

# Every secret a fake hands out; none may ever show in the probe's output.
SECRETS = [ENV_SECRET, FILE_SECRET, SRC_SECRET, SRC_TOKEN, WEB_TOKEN,
           ECS_AUTH, SSO_TOKEN]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def iso(t):
    return datetime.datetime.fromtimestamp(
        int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Issuer:
    """Hands out numbered temporary credentials living `life` seconds."""

    def __init__(self, prefix, life=3600):
        self.prefix, self.life, self.n = prefix, life, 0
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            self.n += 1
            n = self.n
        ident = f"ASIA{self.prefix}{n:04d}"
        secret = f"{self.prefix.lower()}-secret-{n}/Zz+0000000000000000"
        token = f"{self.prefix.lower()}-token-{n}/+=="
        SECRETS.extend([secret, token])
        return ident, secret, token, time.time() + self.life


class Fake:
    """A threaded HTTP(S) server on 127.0.0.1 whose answers come from
    handle(method, path, headers, body) -> (status, headers, body)."""

    def __init__(self, handle, tls=None):
        self.requests = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.requests.append((self.command, self.path,
                                      dict(self.headers), body))
                status, headers, out = handle(self.command, self.path,
                                              self.headers, body)
                if isinstance(out, str):
                    out = out.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket,
                                                 server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fakes():
    started = []

    def start(handle, tls=None):
        f = Fake(handle, tls)
        started.append(f)
        return f

    yield start
    for f in started:
        f.close()


@pytest.fixture
def env(tmp_path):
    """A clean environment: no AWS_* from the caller, files in tmp_path,
    instance metadata disabled unless a test points it at a fake."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(HOME=str(tmp_path),
             AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
             AWS_CONFIG_FILE=str(tmp_path / "config"),
             AWS_EC2_METADATA_DISABLED="true")
    e.pop("WIV_DEBUG", None)
    return e


def write(path, text):
    path.write_text(text)
    return str(path)


def run_probe(env, *args, timeout=60, debug=True):
    e = dict(env)
    if debug:
        e["WIV_DEBUG"] = "1"
    p = subprocess.run([PROBE, *args], env=e, capture_output=True,
                       text=True, timeout=timeout)
    out = p.stdout + p.stderr
    assert "runtime error:" not in out and "Sanitizer" not in out, out
    for s in SECRETS:
        assert s not in out, "a secret leaked into the probe's output"
        assert urllib.parse.quote(s, safe="") not in out, \
            "an encoded secret leaked into the probe's output"
    return p


def takes(p):
    """The probe's lines as dicts."""
    rows = []
    for line in p.stdout.splitlines():
        row = {}
        for part in line.split(" "):
            k, _, v = part.partition("=")
            row[k] = v
        rows.append(row)
    return rows


def creds(env, *args, **kw):
    p = run_probe(env, "creds", *args, **kw)
    assert p.returncode == 0, p.stderr
    return takes(p), p


# --- fake services ---------------------------------------------------------

def imds(issuer, role="wiv-instance-role", delay=None):
    """IMDSv2: tokens from PUT, every GET must carry one."""
    tokens = set()

    def handle(method, path, headers, body):
        if method == "PUT" and path == "/latest/api/token":
            if not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, {}, ""
            t = f"imds-token-{len(tokens)}"
            tokens.add(t)
            return 200, {}, t
        if headers.get("X-aws-ec2-metadata-token") not in tokens:
            return 401, {}, ""
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, {}, role + "\n"
        if path == "/latest/meta-data/iam/security-credentials/" + role:
            if delay:
                delay()
            ident, secret, token, exp = issuer.next()
            return 200, {}, json.dumps({
                "Code": "Success", "LastUpdated": iso(time.time()),
                "Type": "AWS-HMAC", "AccessKeyId": ident,
                "SecretAccessKey": secret, "Token": token,
                "Expiration": iso(exp)})
        return 404, {}, ""
    return handle


def ecs(issuer, auth=ECS_AUTH):
    def handle(method, path, headers, body):
        if method != "GET" or path != "/v2/credentials/abc":
            return 404, {}, ""
        if headers.get("Authorization") != auth:
            return 401, {}, '{"message": "bad token"}'
        ident, secret, token, exp = issuer.next()
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "AccessKeyId": ident, "SecretAccessKey": secret,
            "Token": token, "Expiration": iso(exp),
            "RoleArn": ROLE_ARN})
    return handle


STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def sts_answer(action, ident, secret, token, exp):
    return (f'<{action}Response xmlns="{STS_NS}"><{action}Result>'
            f"<Credentials><AccessKeyId>{ident}</AccessKeyId>"
            f"<SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken>"
            f"<Expiration>{iso(exp)}</Expiration></Credentials>"
            f"<AssumedRoleUser><Arn>{ROLE_ARN}/s</Arn>"
            f"<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>"
            f"</{action}Result><ResponseMetadata><RequestId>r</RequestId>"
            f"</ResponseMetadata></{action}Response>")


def sts_error(status, code, message):
    return status, {"Content-Type": "text/xml"}, (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>r</RequestId></ErrorResponse>")


def check_sigv4(method, url, headers, body, key, secret, token, region,
                service, auth_cls=None):
    """Recomputes the request's signature with botocore; returns None when
    it matches, else why not."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "not SigV4"
    fields = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
    ak, date, reg, svc, term = fields["Credential"].split("/")
    if (ak, reg, svc, term) != (key, region, service, "aws4_request"):
        return f"wrong credential scope {fields['Credential']}"
    amz = headers.get("X-Amz-Date") or headers.get("x-amz-date")
    when = datetime.datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    if abs(time.time() - when.timestamp()) > 300 or date != amz[:8]:
        return "date skewed"
    lower = {k.lower(): v for k, v in headers.items()}
    signed = fields["SignedHeaders"].split(";")
    req = AWSRequest(method=method, url=url, data=body,
                     headers={h: lower[h] for h in signed})
    req.context["timestamp"] = amz
    signer = (auth_cls or SigV4Auth)(Credentials(key, secret, token),
                                     service, region)
    if token and "x-amz-security-token" not in signed:
        return "session token not signed"
    canonical = signer.canonical_request(req)
    want = signer.signature(signer.string_to_sign(req, canonical), req)
    return None if want == fields["Signature"] else "SignatureDoesNotMatch"


class STS:
    """AssumeRoleWithWebIdentity (unsigned, checks the token) and
    AssumeRole (signed with the source credentials, checked by botocore)."""

    def __init__(self, issuer, source=(SRC_ID, SRC_SECRET, SRC_TOKEN),
                 region="us-east-1"):
        self.issuer, self.source, self.region = issuer, source, region
        self.calls = []
        self.url = None

    def __call__(self, method, path, headers, body):
        if method != "POST" or not headers.get(
                "Content-Type", "").startswith(
                    "application/x-www-form-urlencoded"):
            return sts_error(400, "InvalidAction", "POST a form")
        form = dict(urllib.parse.parse_qsl(body.decode(),
                                           keep_blank_values=True))
        self.calls.append(form)
        if form.get("Version") != "2011-06-15" or form.get(
                "RoleArn") != ROLE_ARN or not form.get("RoleSessionName"):
            return sts_error(400, "ValidationError", "bad parameters")
        action = form.get("Action")
        if action == "AssumeRoleWithWebIdentity":
            if "Authorization" in headers:
                return sts_error(400, "InvalidRequest", "must be unsigned")
            if form.get("WebIdentityToken") != WEB_TOKEN:
                return sts_error(400, "InvalidIdentityToken",
                                 "token rejected")
        elif action == "AssumeRole":
            why = check_sigv4("POST", self.url + path, dict(headers), body,
                              *self.source, self.region, "sts")
            if why:
                return sts_error(403, "SignatureDoesNotMatch", why)
        else:
            return sts_error(400, "InvalidAction", action)
        return 200, {"Content-Type": "text/xml"}, sts_answer(
            action, *self.issuer.next())


def start_sts(fakes, env, sts):
    f = fakes(sts)
    sts.url = f.url
    env["AWS_ENDPOINT_URL_STS"] = f.url
    return f


# --- sources ---------------------------------------------------------------

def test_environment(env):
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    rows, p = creds(env)
    assert rows[0]["source"] == "environment"
    assert rows[0]["key"] == ENV_ID
    assert rows[0]["secret"] == sha(ENV_SECRET)
    assert rows[0]["token"] == "-"
    assert "AWS credentials from environment" in p.stderr


def test_environment_half_set_is_an_error(env):
    env.update(AWS_ACCESS_KEY_ID=ENV_ID)
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "AWS_SECRET_ACCESS_KEY" in p.stderr


def test_credentials_file_profiles(env, tmp_path):
    write(tmp_path / "credentials",
          f"[default]\naws_access_key_id = AKIADEFAULT\n"
          f"aws_secret_access_key = {ENV_SECRET}\n\n"
          f"[audit]\naws_access_key_id = {FILE_ID}\n"
          f"aws_secret_access_key = {FILE_SECRET}\n"
          f"aws_session_token = {SRC_TOKEN}\n")
    rows, _ = creds(env, "-p", "audit")
    assert rows[0]["key"] == FILE_ID
    assert rows[0]["token"] == sha(SRC_TOKEN)
    assert rows[0]["source"] == "shared"  # "shared credentials file ..."
    env["AWS_PROFILE"] = "audit"
    assert creds(env)[0][0]["key"] == FILE_ID
    del env["AWS_PROFILE"]
    assert creds(env)[0][0]["key"] == "AKIADEFAULT"


def test_config_file_keys_and_nested_blocks(env, tmp_path):
    write(tmp_path / "config",
          "[profile audit]\nregion = eu-west-1\n"
          "s3 =\n  aws_access_key_id = NOTME\n"
          f"aws_access_key_id = {FILE_ID}\n"
          f"aws_secret_access_key = {FILE_SECRET}\n")
    rows, p = creds(env, "-p", "audit")
    assert rows[0]["key"] == FILE_ID
    assert "config file" in p.stderr


def test_missing_named_profile_is_an_error(env, tmp_path):
    write(tmp_path / "credentials", "[default]\naws_access_key_id = A\n"
          f"aws_secret_access_key = {FILE_SECRET}\n")
    p = run_probe(env, "creds", "-p", "nosuch")
    assert p.returncode == 1
    assert "profile 'nosuch' is in neither" in p.stderr


def test_explicit_profile_beats_environment(env, tmp_path):
    """Environment first; but a profile named with -o profile= wins."""
    write(tmp_path / "credentials", f"[audit]\naws_access_key_id = {FILE_ID}"
          f"\naws_secret_access_key = {FILE_SECRET}\n")
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET,
               AWS_PROFILE="audit")
    assert creds(env)[0][0]["key"] == ENV_ID
    assert creds(env, "-p", "audit")[0][0]["key"] == FILE_ID


def process_script(tmp_path, answer, name="helper.py"):
    script = tmp_path / name
    script.write_text("#!/usr/bin/python3\nimport json, sys\n"
                      "open(sys.argv[1], 'a').write(repr(sys.argv[2:]) + "
                      "'\\n')\n"
                      f"print(json.dumps({answer!r}))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_credential_process(env, tmp_path):
    answer = {"Version": 1, "AccessKeyId": FILE_ID,
              "SecretAccessKey": FILE_SECRET, "SessionToken": SRC_TOKEN,
              "Expiration": iso(time.time() + 3600)}
    script = process_script(tmp_path, answer)
    log = tmp_path / "argv.log"
    # Quoted words reach the helper as single arguments, and shell syntax
    # is not interpreted: the command is split, never given to a shell.
    write(tmp_path / "config",
          f"[profile proc]\ncredential_process = {script} {log} "
          "'two words' \"dq \\\"x\\\"\" $HOME;echo\n")
    rows, p = creds(env, "-p", "proc")
    assert rows[0]["key"] == FILE_ID
    assert rows[0]["token"] == sha(SRC_TOKEN)
    assert "credential_process of profile proc" in p.stderr
    assert log.read_text().strip() == repr(
        ["two words", 'dq "x"', "$HOME;echo"])


def test_credential_process_failures(env, tmp_path):
    script = process_script(tmp_path, {"Version": 2, "AccessKeyId": "A",
                                       "SecretAccessKey": FILE_SECRET})
    write(tmp_path / "config",
          f"[profile v2]\ncredential_process = {script} /dev/null\n"
          "[profile fails]\ncredential_process = /bin/false\n"
          "[profile missing]\ncredential_process = /nonexistent/helper\n"
          "[profile quote]\ncredential_process = /bin/echo 'open\n")
    for profile, want in [("v2", '"Version": 1'),
                          ("fails", "exited with status 1"),
                          ("missing", "cannot run credential_process"),
                          ("quote", "unbalanced quote")]:
        p = run_probe(env, "creds", "-p", profile)
        assert p.returncode == 1, profile
        assert want in p.stderr, (profile, p.stderr)


def test_imds(env, fakes):
    issuer = Issuer("IMDS")
    f = fakes(imds(issuer))
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f.url + "/")
    rows, p = creds(env)
    assert rows[0]["key"] == "ASIAIMDS0001"
    assert rows[0]["source"] == "EC2"
    assert "role wiv-instance-role" in p.stderr
    # IMDSv2: the token PUT came first, with its TTL header.
    method, path, headers, _ = f.requests[0]
    assert (method, path) == ("PUT", "/latest/api/token")
    assert int(headers["X-aws-ec2-metadata-token-ttl-seconds"]) > 0
    assert all("X-aws-ec2-metadata-token" in r[2] for r in f.requests[1:])


def test_imds_down_fails_fast_with_a_clear_error(env, fakes):
    f = fakes(lambda *a: (500, {}, ""))
    dead = f.url
    f.close()  # nothing listens there any more
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=dead)
    t0 = time.monotonic()
    p = run_probe(env, "creds")
    assert time.monotonic() - t0 < 5
    assert p.returncode == 1
    assert "no AWS credentials found" in p.stderr
    assert "instance metadata token" in p.stderr


def test_imds_disabled_is_not_asked(env, fakes):
    f = fakes(imds(Issuer("IMDS")))
    env.update(AWS_EC2_METADATA_DISABLED="TRUE",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f.url)
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "AWS_EC2_METADATA_DISABLED" in p.stderr
    assert f.requests == []


def test_imds_without_role(env, fakes):
    f = fakes(imds(Issuer("IMDS"), role=""))
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f.url)
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "names no usable role" in p.stderr


def test_ecs_full_uri_with_token_and_token_file(env, fakes, tmp_path):
    issuer = Issuer("ECS")
    f = fakes(ecs(issuer))
    env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f.url + "/v2/credentials/abc",
               AWS_CONTAINER_AUTHORIZATION_TOKEN=ECS_AUTH)
    rows, p = creds(env)
    assert rows[0]["key"] == "ASIAECS0001"
    assert "container credentials endpoint" in p.stderr
    # The file wins over the variable.
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong-token"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = write(
        tmp_path / "ecs-token", ECS_AUTH + "\n")
    assert creds(env)[0][0]["key"] == "ASIAECS0002"
    # A wrong token is refused, and that is an error, not a fall-through.
    del env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "401" in p.stderr


def test_ecs_plain_http_only_to_loopback(env):
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://192.0.2.1/creds"
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "only allowed to a loopback" in p.stderr


def test_web_identity_from_environment(env, fakes, tmp_path):
    sts = STS(Issuer("WEB"))
    start_sts(fakes, env, sts)
    env.update(AWS_WEB_IDENTITY_TOKEN_FILE=write(tmp_path / "jwt", WEB_TOKEN),
               AWS_ROLE_ARN=ROLE_ARN, AWS_ROLE_SESSION_NAME="audit-pod")
    rows, p = creds(env)
    assert rows[0]["key"] == "ASIAWEB0001"
    assert "web identity token file" in p.stderr
    assert sts.calls[0]["Action"] == "AssumeRoleWithWebIdentity"
    assert sts.calls[0]["RoleSessionName"] == "audit-pod"


def test_web_identity_from_profile_and_rejected_token(env, fakes, tmp_path):
    sts = STS(Issuer("WEB"))
    start_sts(fakes, env, sts)
    jwt = write(tmp_path / "jwt", WEB_TOKEN)
    write(tmp_path / "config", f"[profile eks]\nrole_arn = {ROLE_ARN}\n"
          f"web_identity_token_file = {jwt}\n")
    assert creds(env, "-p", "eks")[0][0]["key"] == "ASIAWEB0001"
    write(tmp_path / "jwt", "some-other-token")
    p = run_probe(env, "creds", "-p", "eks")
    assert p.returncode == 1
    assert "InvalidIdentityToken" in p.stderr


@pytest.mark.skipif(SigV4Auth is None, reason="python3-botocore missing")
def test_assume_role_signed_with_source_profile(env, fakes, tmp_path):
    sts = STS(Issuer("ROLE"), region="eu-west-1")
    start_sts(fakes, env, sts)
    write(tmp_path / "credentials",
          f"[base]\naws_access_key_id = {SRC_ID}\n"
          f"aws_secret_access_key = {SRC_SECRET}\n"
          f"aws_session_token = {SRC_TOKEN}\n")
    write(tmp_path / "config",
          f"[profile audit]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"
          "external_id = wiv-ext-42\nrole_session_name = wivaudit-test\n"
          "duration_seconds = 900\nregion = eu-west-1\n")
    rows, p = creds(env, "-p", "audit")
    assert rows[0]["key"] == "ASIAROLE0001", p.stderr
    assert rows[0]["source"] == "role"
    assert "assumed with credentials from shared credentials file" in p.stderr
    call = sts.calls[0]
    assert call["Action"] == "AssumeRole"
    assert call["ExternalId"] == "wiv-ext-42"
    assert call["RoleSessionName"] == "wivaudit-test"
    assert call["DurationSeconds"] == "900"


@pytest.mark.skipif(SigV4Auth is None, reason="python3-botocore missing")
def test_assume_role_wrong_secret_fails_the_signature(env, fakes, tmp_path):
    """The fake STS really checks: a wrong source secret is refused."""
    sts = STS(Issuer("ROLE"))
    start_sts(fakes, env, sts)
    write(tmp_path / "credentials",
          f"[base]\naws_access_key_id = {SRC_ID}\n"
          f"aws_secret_access_key = {FILE_SECRET}\n")
    write(tmp_path / "config",
          f"[profile audit]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n")
    p = run_probe(env, "creds", "-p", "audit")
    assert p.returncode == 1
    assert "403 SignatureDoesNotMatch" in p.stderr


@pytest.mark.skipif(SigV4Auth is None, reason="python3-botocore missing")
def test_assume_role_from_credential_source_environment(env, fakes, tmp_path):
    sts = STS(Issuer("ROLE"), source=(ENV_ID, ENV_SECRET, None))
    start_sts(fakes, env, sts)
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    write(tmp_path / "config", f"[profile ci]\nrole_arn = {ROLE_ARN}\n"
          "credential_source = Environment\n")
    rows, _ = creds(env, "-p", "ci")
    assert rows[0]["key"] == "ASIAROLE0001"


def test_source_profile_loop_is_an_error(env, tmp_path):
    write(tmp_path / "config",
          f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\n"
          f"[profile b]\nrole_arn = {ROLE_ARN}\nsource_profile = a\n")
    p = run_probe(env, "creds", "-p", "a")
    assert p.returncode == 1
    assert "loop" in p.stderr


def test_role_arn_without_source_is_an_error(env, tmp_path):
    write(tmp_path / "config", f"[profile r]\nrole_arn = {ROLE_ARN}\n")
    p = run_probe(env, "creds", "-p", "r")
    assert p.returncode == 1
    assert "no source_profile" in p.stderr


# --- order of precedence ---------------------------------------------------

def test_precedence(env, fakes, tmp_path):
    """environment > profile role > web identity > credentials file >
    credential_process > config file > container > instance metadata."""
    f_imds = fakes(imds(Issuer("IMDS")))
    f_ecs = fakes(ecs(Issuer("ECS")))
    sts = STS(Issuer("STS"), source=(FILE_ID, FILE_SECRET, None))
    start_sts(fakes, env, sts)
    script = process_script(tmp_path, {
        "Version": 1, "AccessKeyId": "AKIAPROCESS",
        "SecretAccessKey": SRC_SECRET})
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f_imds.url,
               AWS_CONTAINER_CREDENTIALS_FULL_URI=f_ecs.url +
               "/v2/credentials/abc",
               AWS_CONTAINER_AUTHORIZATION_TOKEN=ECS_AUTH)
    assert creds(env)[0][0]["key"] == "ASIAECS0001"
    write(tmp_path / "config",
          f"[default]\naws_access_key_id = AKIACONFIG\n"
          f"aws_secret_access_key = {SRC_SECRET}\n"
          f"credential_process = {script} /dev/null\n"
          "[profile base]\n"
          f"aws_access_key_id = {FILE_ID}\n"
          f"aws_secret_access_key = {FILE_SECRET}\n")
    assert creds(env)[0][0]["key"] == "AKIAPROCESS"
    write(tmp_path / "credentials", f"[default]\naws_access_key_id = "
          f"AKIACREDFILE\naws_secret_access_key = {SRC_SECRET}\n")
    assert creds(env)[0][0]["key"] == "AKIACREDFILE"
    env.update(AWS_WEB_IDENTITY_TOKEN_FILE=write(tmp_path / "jwt", WEB_TOKEN),
               AWS_ROLE_ARN=ROLE_ARN)
    assert creds(env)[0][0]["key"] == "ASIASTS0001"
    with open(tmp_path / "config", "a") as c:
        c.write(f"[profile roled]\nrole_arn = {ROLE_ARN}\n"
                "source_profile = base\n")
    env["AWS_PROFILE"] = "roled"
    assert creds(env)[0][0]["source"] == "role"
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    assert creds(env)[0][0]["key"] == ENV_ID
    assert f_imds.requests == []  # never reached: ECS answered first


# --- IAM Identity Center (SSO) ----------------------------------------------

def sso_portal(issuer, token=SSO_TOKEN, account="123456789012",
               role="AuditReader"):
    """GetRoleCredentials as the portal answers it: the bearer token in
    x-amz-sso_bearer_token, account and role in the query, expiration in
    epoch milliseconds; 401 UnauthorizedException for another token."""
    def handle(method, path, headers, body):
        url = urllib.parse.urlsplit(path)
        q = urllib.parse.parse_qs(url.query)
        if method != "GET" or url.path != "/federation/credentials":
            return 404, {}, ""
        if headers.get("x-amz-sso_bearer_token") != token:
            return 401, {"Content-Type": "application/json"}, json.dumps({
                "message": "Session token not found or invalid",
                "__type": "com.amazonaws.switchboard.portal#"
                          "UnauthorizedException"})
        if q.get("account_id") != [account] or q.get("role_name") != [role]:
            return 403, {"Content-Type": "application/json"}, json.dumps({
                "message": "No access", "__type": "com.amazonaws."
                "switchboard.portal#ForbiddenException"})
        ident, secret, tok, exp = issuer.next()
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "roleCredentials": {"accessKeyId": ident,
                                "secretAccessKey": secret,
                                "sessionToken": tok,
                                "expiration": int(exp * 1000)}})
    return handle


def sso_cache(tmp_path, key, expires, token=SSO_TOKEN, region="us-east-1"):
    """What `aws sso login` leaves: ~/.aws/sso/cache/SHA1(key).json."""
    d = tmp_path / ".aws" / "sso" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(key.encode()).hexdigest() + ".json"
    (d / name).write_text(json.dumps({
        "startUrl": SSO_START, "region": region, "accessToken": token,
        "expiresAt": expires, "clientId": "c", "clientSecret": "s"}))
    return d / name


SSO_SESSION_CONFIG = (
    "[profile audit]\nsso_session = corp\nsso_account_id = 123456789012\n"
    "sso_role_name = AuditReader\nregion = eu-west-1\n\n"
    f"[sso-session corp]\nsso_start_url = {SSO_START}\n"
    "sso_region = us-east-1\nsso_registration_scopes = sso:account:access\n")
SSO_LEGACY_CONFIG = (
    f"[profile legacy]\nsso_start_url = {SSO_START}\nsso_region = us-east-1\n"
    "sso_account_id = 123456789012\nsso_role_name = AuditReader\n")


def start_sso(fakes, env, issuer):
    f = fakes(sso_portal(issuer))
    env["AWS_ENDPOINT_URL_SSO"] = f.url
    return f


def test_sso_session_profile(env, fakes, tmp_path):
    f = start_sso(fakes, env, Issuer("SSO"))
    write(tmp_path / "config", SSO_SESSION_CONFIG)
    sso_cache(tmp_path, "corp", iso(time.time() + 3600))
    rows, p = creds(env, "-p", "audit")
    assert rows[0]["key"] == "ASIASSO0001"
    assert rows[0]["token"] != "-"
    assert "IAM Identity Center (SSO) profile audit (sso-session corp), " \
        "account 123456789012, role AuditReader" in p.stderr
    method, path, headers, _ = f.requests[0]
    assert method == "GET"
    assert path == "/federation/credentials?account_id=123456789012" \
        "&role_name=AuditReader"
    assert headers["x-amz-sso_bearer_token"] == SSO_TOKEN


def test_sso_legacy_profile(env, fakes, tmp_path):
    start_sso(fakes, env, Issuer("SSO"))
    write(tmp_path / "config", SSO_LEGACY_CONFIG)
    # Older CLIs wrote "...UTC"; the cache is named by the start URL.
    exp = datetime.datetime.fromtimestamp(time.time() + 3600,
                                          datetime.timezone.utc)
    sso_cache(tmp_path, SSO_START, exp.strftime("%Y-%m-%dT%H:%M:%SUTC"))
    rows, p = creds(env, "-p", "legacy")
    assert rows[0]["key"] == "ASIASSO0001"
    assert "IAM Identity Center (SSO) profile legacy, account" in p.stderr


@pytest.mark.parametrize("case", ["expired", "missing", "revoked"])
def test_sso_login_needed(env, fakes, tmp_path, case):
    """A login that is gone fails with the command that fixes it; the token
    is never printed (run_probe checks every secret, with debug on)."""
    f = start_sso(fakes, env, Issuer("SSO"))
    write(tmp_path / "config", SSO_SESSION_CONFIG)
    if case == "expired":
        sso_cache(tmp_path, "corp", "2001-02-03T04:05:06Z")
    elif case == "revoked":
        sso_cache(tmp_path, "corp", iso(time.time() + 3600),
                  token=SSO_TOKEN + "-revoked")
        SECRETS.append(SSO_TOKEN + "-revoked")
    p = run_probe(env, "creds", "-p", "audit")
    assert p.returncode == 1
    assert "run `aws sso login --profile audit` (sso-session 'corp')" in \
        p.stderr, p.stderr
    if case == "expired":
        assert "expired at 2001-02-03T04:05:06Z" in p.stderr
    assert len(f.requests) == (1 if case == "revoked" else 0)


def test_sso_settings_incomplete(env, tmp_path):
    write(tmp_path / "config", "[profile audit]\nsso_session = nosuch\n"
          "sso_account_id = 1\nsso_role_name = R\n\n"
          "[profile half]\nsso_start_url = https://x\nsso_region = us-east-1"
          "\nsso_account_id = 1\n")
    p = run_probe(env, "creds", "-p", "audit")
    assert p.returncode == 1
    assert "has no [sso-session nosuch]" in p.stderr
    p = run_probe(env, "creds", "-p", "half")
    assert p.returncode == 1
    assert "SSO profile 'half' lacks sso_role_name" in p.stderr


def test_sso_refresh_before_expiry(env, fakes, tmp_path):
    """Role credentials living 4 s are traded again with the cached token
    before they run out."""
    f = start_sso(fakes, env, Issuer("SSO", life=4))
    write(tmp_path / "config", SSO_SESSION_CONFIG)
    sso_cache(tmp_path, "corp", iso(time.time() + 3600))
    rows, p = creds(env, "-p", "audit", "-n", "5", "-i", "1000")
    keys = [r["key"] for r in rows]
    assert all(r.get("error") is None for r in rows)
    assert len(set(keys)) >= 2 and keys == sorted(keys), keys
    assert len(f.requests) == len(set(keys))
    assert "refreshed AWS credentials from IAM Identity Center" in p.stderr


# --- refresh ---------------------------------------------------------------

def test_refresh_before_expiry(env, fakes):
    """Credentials living 4 s are reloaded halfway, every time."""
    issuer = Issuer("IMDS", life=4)
    f = fakes(imds(issuer))
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f.url)
    rows, p = creds(env, "-n", "8", "-i", "1000")
    keys = [r["key"] for r in rows]
    assert all(r.get("error") is None for r in rows)
    assert len(set(keys)) >= 3, keys
    assert keys == sorted(keys)  # never back to an older key
    assert "refreshed AWS credentials from EC2 instance metadata" in p.stderr


@pytest.mark.skipif(SigV4Auth is None, reason="python3-botocore missing")
def test_refresh_of_assumed_role(env, fakes, tmp_path):
    sts = STS(Issuer("ROLE", life=4))
    start_sts(fakes, env, sts)
    write(tmp_path / "credentials",
          f"[base]\naws_access_key_id = {SRC_ID}\n"
          f"aws_secret_access_key = {SRC_SECRET}\n"
          f"aws_session_token = {SRC_TOKEN}\n")
    write(tmp_path / "config",
          f"[profile audit]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n")
    rows, _ = creds(env, "-p", "audit", "-n", "5", "-i", "1000")
    assert len({r["key"] for r in rows}) >= 2
    assert all(c["Action"] == "AssumeRole" for c in sts.calls)


def test_refresh_is_single_flight_and_readers_keep_going(env, fakes):
    """While one caller waits 0.8 s for new credentials (instance metadata
    gets one second), the others go on at once with the old ones; the
    service is asked once."""
    issuer = Issuer("IMDS", life=8)
    slow = {"on": False}

    def delay():
        if slow["on"]:
            time.sleep(0.8)
        slow["on"] = True  # the first answer is quick, the refresh slow

    f = fakes(imds(issuer, delay=delay))
    env.update(AWS_EC2_METADATA_DISABLED="false",
               AWS_EC2_METADATA_SERVICE_ENDPOINT=f.url)
    # Round 0 at once, round 1 at ~4.5 s (past the halfway mark, 4 s).
    rows, _ = creds(env, "-n", "2", "-i", "4500", "-t", "8")
    r1 = [r for r in rows if r["round"] == "1"]
    assert all(r.get("error") is None for r in r1)
    slow_takes = [r for r in r1 if int(r["ms"]) >= 700]
    fast_takes = [r for r in r1 if int(r["ms"]) < 300]
    assert len(slow_takes) == 1, r1
    assert len(fast_takes) == 7, r1
    assert slow_takes[0]["key"] == "ASIAIMDS0002"
    assert {r["key"] for r in fast_takes} == {"ASIAIMDS0001"}
    role_gets = [r for r in f.requests
                 if r[1].endswith("/security-credentials/wiv-instance-role")]
    assert len(role_gets) == 2


def test_expired_credentials_are_refused(env, tmp_path):
    script = process_script(tmp_path, {
        "Version": 1, "AccessKeyId": FILE_ID, "SecretAccessKey": FILE_SECRET,
        "Expiration": "2001-02-03T04:05:06Z"})
    write(tmp_path / "config",
          f"[default]\ncredential_process = {script} /dev/null\n")
    p = run_probe(env, "creds")
    assert p.returncode == 1
    assert "expired at 2001-02-03 04:05:06 UTC" in p.stderr


# --- region and TLS --------------------------------------------------------

BUCKET_REGION = "eu-west-1"
LIST_XML = ('<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            "<Name>audit</Name><Prefix></Prefix><KeyCount>2</KeyCount>"
            "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
            "<Contents><Key>org/a.json.gz</Key><ETag>&quot;e1&quot;</ETag>"
            "<Size>1</Size></Contents>"
            "<Contents><Key>org/b.json.gz</Key><ETag>&quot;e2&quot;</ETag>"
            "<Size>2</Size></Contents></ListBucketResult>")


def s3(fake_url, redirect):
    """A bucket in eu-west-1: a request signed for another region gets
    S3's wrong-region answer (301 PermanentRedirect with the region header,
    or 400 AuthorizationHeaderMalformed with <Region> only); a request
    signed for eu-west-1 is checked with botocore and listed."""
    def handle(method, path, headers, body):
        auth = headers.get("Authorization", "")
        region = auth.split("Credential=")[1].split("/")[2] if auth else ""
        if region != BUCKET_REGION:
            if redirect == 301:
                return 301, {"x-amz-bucket-region": BUCKET_REGION}, (
                    "<Error><Code>PermanentRedirect</Code><Message>use the "
                    "right endpoint</Message><Bucket>audit</Bucket></Error>")
            return 400, {}, (
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>"
                f"the region '{region}' is wrong; expecting "
                f"'{BUCKET_REGION}'</Message><Region>{BUCKET_REGION}"
                "</Region></Error>")
        if SigV4Auth is not None:
            why = check_sigv4(method, fake_url() + path, dict(headers), b"",
                              ENV_ID, ENV_SECRET, None, BUCKET_REGION, "s3",
                              S3SigV4Auth)
            if why:
                return 403, {}, ("<Error><Code>SignatureDoesNotMatch</Code>"
                                 f"<Message>{why}</Message></Error>")
        return 200, {"Content-Type": "application/xml"}, LIST_XML
    return handle


@pytest.mark.parametrize("redirect", [301, 400])
def test_wrong_region_is_followed(env, fakes, redirect):
    holder = {}
    f = fakes(s3(lambda: holder["url"], redirect))
    holder["url"] = f.url
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    p = run_probe(env, "list", "-e", f.url, "-b", "audit", "-r", "us-east-1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["org/a.json.gz", "org/b.json.gz"]
    assert "is in region eu-west-1, not us-east-1: following it" in p.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away CA, a certificate for 127.0.0.1 signed by it, and an
    unrelated CA."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=wivaudit test CA")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", "other.key", "-out", "other.pem", "-subj", "/CN=other CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key",
         "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName = IP:127.0.0.1\n"
                               "basicConstraints = CA:FALSE\n"
                               "extendedKeyUsage = serverAuth\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey",
         "ca.key", "-CAcreateserial", "-days", "2", "-out", "srv.pem",
         "-extfile", "ext.cnf")
    return d


def test_tls_with_and_without_cafile(env, fakes, pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    holder = {}
    f = fakes(s3(lambda: holder["url"], 301), tls=ctx)
    holder["url"] = f.url
    env.update(AWS_ACCESS_KEY_ID=ENV_ID, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    args = ["list", "-e", f.url, "-b", "audit", "-r", BUCKET_REGION]
    p = run_probe(env, *args, "-c", str(pki / "ca.pem"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["org/a.json.gz", "org/b.json.gz"]
    p = run_probe(env, *args)
    assert p.returncode == 1
    assert "certificate" in p.stderr
    assert "check -o cafile=" in p.stderr
    # A CA that did not sign the server's certificate is refused too.
    p = run_probe(env, *args, "-c", str(pki / "other.pem"))
    assert p.returncode == 1
    assert "certificate" in p.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
