#!/usr/bin/env python3
"""Write a sample Wiv audit-log bucket as a local directory tree.

The tree mirrors what Wiv delivers into a bucket (an `aws s3 sync` copy):

    OUT/{org_id}/{org|user|api}-audit-logs-{epoch_ms}.json.gz

each object the gzip of a JSON array of events. Upload it with
`aws s3 sync OUT s3://bucket/`, or mount OUT directly as a local source.

--messy adds the bad input wivaudit must survive: bodies that are not gzip,
truncated gzip, not an array, invalid JSON, non-object elements, awkward ids
and timestamps, re-deliveries, exotic number and string text, and keys that
do not match the delivery pattern.

Output is a function of the options alone (--seed), so tests can regenerate
a corpus and compare against a model of it.
"""

import argparse
import datetime
import gzip
import json
import os
import random
import sys
import uuid

TYPES = ("org", "user", "api")

EVENT_TYPES = {
    "org": ["OrgUpdated", "PolicyUpdated", "RoleAssigned", "RoleRevoked",
            "IntegrationConnected", "BillingPlanChanged", "SsoConfigured"],
    "user": ["UserInvited", "UserLoggedIn", "UserLoggedOut",
             "UserPasswordChanged", "UserMfaEnabled", "UserRemoved",
             "UserLoginFailed"],
    "api": ["ApiKeyCreated", "ApiKeyRevoked", "ApiKeyRotated",
            "ApiRequestDenied", "WebhookCreated", "WebhookDeleted"],
}

ORG_NAMES = ["Acme Corp", "Globex", "Initech", "Umbrella Analytics",
             "Müller & Söhne GmbH", "Société Générale d'Exemple",
             "株式会社サンプル", "Nordlys AS", "Zürich Cloud AG",
             "Ωmega Labs", "Stark Industries", "Wayne Enterprises"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
         "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor",
         "walter", "zoë", "josé"]
ROLES = ["admin", "editor", "viewer", "billing", "security-auditor"]
COUNTRIES = [("DE", "Berlin"), ("US", "Seattle"), ("IL", "Tel Aviv"),
             ("JP", "Tokyo"), ("BR", "São Paulo"), ("FR", "Paris")]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
          "Firefox/121.0",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.2 Safari/605.1.15",
          "wiv-cli/2.4.1 python-requests/2.31.0", "Terraform/1.6.6"]
SCOPES = ["read:audit", "read:inventory", "write:policies", "admin:org",
          "read:billing"]

DAY_MS = 86400 * 1000


class Raw:
    """JSON text written verbatim (number or string text json.dumps would
    not produce, e.g. `1.50`, a 30-digit integer or an escaped `\\/`)."""

    def __init__(self, text):
        self.text = text


def dumps(value):
    """json.dumps(value, ensure_ascii=False, separators=(',', ':')) that
    also writes Raw values verbatim."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + dumps(v)
            for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Gen:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.out = args.out
        self.used_keys = set()
        self.n_objects = 0
        self.n_bad = 0
        self.n_other = 0
        self.n_events = 0

    # -- small random helpers -------------------------------------------

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ip(self):
        r = self.rng
        if r.random() < 0.15:
            return "2001:db8:%x:%x::%x" % (r.randrange(65536),
                                           r.randrange(65536),
                                           r.randrange(1, 65536))
        return "%d.%d.%d.%d" % (r.choice([10, 172, 192, 203, 198]),
                                r.randrange(256), r.randrange(256),
                                r.randrange(1, 255))

    def email(self, org):
        return "%s.%d@%s" % (self.rng.choice(FIRST), self.rng.randrange(100),
                             org["domain"])

    # -- events ---------------------------------------------------------

    def event_data(self, org, event_type):
        r = self.rng
        if event_type == "OrgCreated":
            return {"org": {"name": org["name"], "plan": "enterprise",
                            "region": r.choice(["us-east-1", "eu-west-1"])},
                    "settings": {"sso": False, "mfa_required": True,
                                 "session_timeout_minutes": 60},
                    "tags": []}
        if event_type in ("UserInvited", "RoleAssigned", "RoleRevoked"):
            return {"user_id": self.uuid(), "email": self.email(org),
                    "role": r.choice(ROLES),
                    "previous_role": r.choice([None, r.choice(ROLES)]),
                    "teams": r.sample(["platform", "finops", "secops", "data"],
                                      r.randrange(0, 3))}
        if event_type in ("UserLoggedIn", "UserLoginFailed"):
            country, city = r.choice(COUNTRIES)
            d = {"method": r.choice(["sso", "password", "google"]),
                 "mfa": r.random() < 0.7, "user_agent": r.choice(AGENTS),
                 "geo": {"country": country, "city": city}}
            if event_type == "UserLoginFailed":
                d["reason"] = r.choice(["bad_password", "mfa_timeout",
                                        "account_locked"])
                d["attempt"] = r.randrange(1, 6)
            return d
        if event_type.startswith("ApiKey"):
            return {"key_id": "wk_" + self.uuid().replace("-", "")[:20],
                    "name": r.choice(["ci", "terraform", "siem-export",
                                      "backup"]),
                    "scopes": r.sample(SCOPES, r.randrange(1, 4)),
                    "expires_at": r.choice([None, 1800000000 +
                                            r.randrange(10 ** 7)])}
        if event_type == "PolicyUpdated":
            return {"policy_id": self.uuid(),
                    "version": r.randrange(1, 40),
                    "changes": [{"op": "replace",
                                 "path": "/rules/%d/effect" % r.randrange(5),
                                 "from": "allow", "to": "deny"},
                                {"op": "add", "path": "/rules/-",
                                 "value": {"resource": "arn:aws:s3:::*",
                                           "actions": ["s3:GetObject"],
                                           "conditions": {}}}]}
        if event_type.startswith("Webhook"):
            return {"webhook_id": self.uuid(),
                    "url": "https://hooks.%s/wiv/%d" % (org["domain"],
                                                         r.randrange(1000)),
                    "events": r.sample(["finding.created", "cost.anomaly",
                                        "workflow.failed"], 2)}
        if event_type == "ApiRequestDenied":
            return {"path": "/v2/orgs/%s/workflows" % org["id"],
                    "status": 403, "latency_ms": r.randrange(3, 900) / 10}
        return {"changed_fields": r.sample(["name", "logo", "timezone",
                                            "billing_email", "sso_domain"],
                                           2),
                "request_id": self.uuid()}

    def event(self, org, typ, key_ms, event_type=None):
        r = self.rng
        if event_type is None:
            event_type = r.choice(EVENT_TYPES[typ])
        created = key_ms / 1000 - r.uniform(2, 600)
        created_at = (round(created, 3) if r.random() < 0.2
                      else int(created))
        system = r.random() < 0.1
        by_type = ("system" if system else
                   "api_key" if typ == "api" else "user")
        return {
            "id": self.uuid(),
            "org_id": org["id"],
            "org_name": org["name"],
            "event_type": event_type,
            "event_data": self.event_data(org, event_type),
            "created_at": created_at,
            "caused_by_id": None if system else self.uuid(),
            "caused_by_type": by_type,
            "caused_by_source_ip": None if system else self.ip(),
            "relevant_user_email": (self.email(org) if typ == "user" or
                                    r.random() < 0.3 else None),
        }

    # -- objects --------------------------------------------------------

    def new_key_ms(self, org, typ, day_ms, near_midnight=False):
        while True:
            if near_midnight:
                offset = self.rng.randrange(5 * 1000, 150 * 1000)
            else:
                # Stay an hour away from midnight unless asked, so only the
                # cases chosen on purpose straddle a day boundary.
                offset = self.rng.randrange(3600 * 1000, 23 * 3600 * 1000)
            key_ms = day_ms + offset
            if (org["id"], typ, key_ms) not in self.used_keys:
                self.used_keys.add((org["id"], typ, key_ms))
                return key_ms

    def write(self, rel, data):
        path = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def put_object(self, org, typ, key_ms, body, events=0, bad=False):
        self.write("%s/%s-audit-logs-%d.json.gz" % (org["id"], typ, key_ms),
                   body)
        self.n_objects += 1
        self.n_events += events
        self.n_bad += bad

    def put_events(self, org, typ, key_ms, events, text=None):
        text = dumps(events) if text is None else text
        self.put_object(org, typ, key_ms,
                        gzip.compress(text.encode("utf-8"), mtime=0),
                        events=sum(isinstance(e, dict) for e in events))

    def put_other(self, rel, data):
        self.write(rel, data)
        self.n_other += 1

    # -- the corpus -----------------------------------------------------

    def run(self):
        a = self.args
        end = datetime.date.fromisoformat(a.end_date)
        first = end - datetime.timedelta(days=a.days - 1)
        orgs = []
        for i in range(a.orgs):
            name = ORG_NAMES[(i + self.rng.randrange(len(ORG_NAMES)))
                             % len(ORG_NAMES)]
            orgs.append({"id": self.uuid(), "name": name,
                         "domain": "example%d.com" % i})
        for org in orgs:
            for d in range(a.days):
                day = first + datetime.timedelta(days=d)
                day_ms = int(datetime.datetime(
                    day.year, day.month, day.day,
                    tzinfo=datetime.timezone.utc).timestamp()) * 1000
                for typ in TYPES:
                    # Some days have no delivery of some type: the date
                    # rule's "that day has a directory" needs such gaps.
                    if d > 0 and self.rng.random() < a.gaps:
                        continue
                    for k in range(a.objects_per_day):
                        near = self.rng.random() < 0.15
                        key_ms = self.new_key_ms(org, typ, day_ms, near)
                        n = max(1, self.rng.randint(
                            a.events_per_object // 2,
                            a.events_per_object * 3 // 2))
                        events = [self.event(org, typ, key_ms)
                                  for _ in range(n)]
                        if d == 0 and typ == "org" and k == 0:
                            events[0] = self.event(org, typ, key_ms,
                                                   "OrgCreated")
                        self.put_events(org, typ, key_ms, events)
        if a.messy:
            self.messy(orgs, first, end)
        return orgs

    def messy(self, orgs, first, end):
        r = self.rng
        org = orgs[0]
        org2 = orgs[1 % len(orgs)]

        def day_ms(offset):
            day = first + datetime.timedelta(days=offset)
            return int(datetime.datetime(
                day.year, day.month, day.day,
                tzinfo=datetime.timezone.utc).timestamp()) * 1000

        mid = min(self.args.days - 1, 2)
        base = day_ms(mid)

        def ev(typ, key_ms, **over):
            e = self.event(org, typ, key_ms)
            for k, v in over.items():
                if v is _DROP:
                    del e[k]
                else:
                    e[k] = v
            return e

        # Bodies that are not a readable array: each is skipped whole.
        k = self.new_key_ms(org, "user", base)
        self.put_object(org, "user", k,
                        bytes(r.randrange(256) for _ in range(300)), bad=True)
        k = self.new_key_ms(org, "user", base)
        good = gzip.compress(dumps([ev("user", k) for _ in range(20)])
                             .encode(), mtime=0)
        self.put_object(org, "user", k, good[:len(good) // 2], bad=True)
        k = self.new_key_ms(org, "api", base)
        self.put_object(org, "api", k, gzip.compress(
            dumps({"events": [ev("api", k)]}).encode(), mtime=0), bad=True)
        k = self.new_key_ms(org, "api", base)
        self.put_object(org, "api", k, b"", bad=True)
        k = self.new_key_ms(org, "org", base)
        text = dumps([ev("org", k), ev("org", k)])
        text = text[:-1] + ',{"id":"broken","created_at":tru}]'
        self.put_object(org, "org", k,
                        gzip.compress(text.encode(), mtime=0), bad=True)
        k = self.new_key_ms(org, "org", base)
        self.put_object(org, "org", k, gzip.compress(
            (dumps([ev("org", k)]) + " trailing").encode(), mtime=0),
            bad=True)
        # A day whose only object is unreadable: an empty type directory.
        k = self.new_key_ms(org2, "api", day_ms(self.args.days))
        self.put_object(org2, "api", k, b"\x1f\x8b\x08\x00garbage", bad=True)

        # A plain (not gzipped) JSON array: accepted.
        k = self.new_key_ms(org, "api", base)
        events = [ev("api", k) for _ in range(3)]
        self.put_object(org, "api", k, dumps(events).encode(), events=3)
        # An empty array.
        k = self.new_key_ms(org, "api", base)
        self.put_events(org, "api", k, [])

        # Non-object elements: skipped, but they count for positions.
        k = self.new_key_ms(org, "user", base)
        self.put_events(org, "user", k, [
            ev("user", k), 42, "just a string", None, [1, 2], True,
            ev("user", k, id=_DROP), {}, ev("user", k)])

        # Awkward ids.
        k = self.new_key_ms(org, "org", base)
        long_ascii = "x" * 250
        long_slash = "/" * 70 + "tail"
        # Multi-byte characters across the 180-byte cut.
        long_utf8 = "a" * 179 + "é" * 20
        odd_ids = ["a/b", "../../etc/passwd", "..", ".", ".hidden", "%2F",
                   "100%", "ctl\x01\x1f\x7fend", "new\nline", "tab\there",
                   "nul\x00byte", "ü-ñ-日本-🚀", "space id",
                   "back\\slash",
                   long_ascii, long_slash, long_utf8, "dup-id", "dup-id",
                   "dup-id~2", "dup-id"]
        events = [ev("org", k, id=i) for i in odd_ids]
        events += [ev("org", k, id=_DROP), ev("org", k, id=""),
                   ev("org", k, id=None), ev("org", k, id=12345),
                   ev("org", k, id=Raw("-1.5e3")), ev("org", k, id=True),
                   ev("org", k, id={"nested": "id"}), ev("org", k, id=[1])]
        self.put_events(org, "org", k, events)
        # The same id in a later object of the same directory: ~N.
        k2 = self.new_key_ms(org, "org", base)
        self.put_events(org, "org", k2, [ev("org", k2, id="dup-id"),
                                         ev("org", k2, id="a/b")])

        # created_at variants.
        k = self.new_key_ms(org, "user", base)
        self.put_events(org, "user", k, [
            ev("user", k, created_at=str(k // 1000 - 30)),
            ev("user", k, created_at=-5),
            ev("user", k, created_at=k // 1000 - 3 * 86400),
            ev("user", k, created_at=k // 1000 + 2 * 86400),
            ev("user", k, created_at=_DROP),
            ev("user", k, created_at=None),
            ev("user", k, created_at=True),
            ev("user", k, created_at=Raw("1.0e3")),
            ev("user", k, created_at=k / 1000 - 12.5),
            ev("user", k, created_at=Raw("%d.000" % (k // 1000 - 40))),
        ])
        # Just across midnight, into a previous day with and without a
        # directory of the same type.
        for typ in TYPES:
            k = self.new_key_ms(org, typ, base, near_midnight=True)
            self.put_events(org, typ, k, [
                ev(typ, k, created_at=(base // 1000) - 2),
                ev(typ, k, created_at=(base // 1000) - 0.25),
                ev(typ, k, created_at=(base // 1000)),
                ev(typ, k)])
        gap_org = {"id": self.uuid(), "name": "Gap Org",
                   "domain": "gap.example"}
        gap_day = day_ms(1)
        k = self.new_key_ms(gap_org, "user", gap_day, near_midnight=True)
        self.put_events(gap_org, "user", k, [
            dict(self.event(gap_org, "user", k),
                 created_at=gap_day // 1000 - 5),
            dict(self.event(gap_org, "user", k),
                 created_at=gap_day // 1000 - 86400 - 5)])
        k = self.new_key_ms(gap_org, "org", gap_day - DAY_MS)
        self.put_events(gap_org, "org", k, [
            self.event(gap_org, "org", k, "OrgCreated")])

        # Exotic number and string text, kept byte for byte.
        k = self.new_key_ms(org, "api", base)
        self.put_events(org, "api", k, [
            ev("api", k, event_data={
                "ratio": 0.1, "big": Raw("123456789012345678901234567890"),
                "neg_big": Raw("-987654321098765432109876543210"),
                "trailing_zero": Raw("1.50"), "exp": Raw("1E+2"),
                "small": Raw("5e-324"), "neg_zero": Raw("-0"),
                "float_one": Raw("1.0"),
                "escaped": Raw('"path\\/to\\u00e9 \\"q\\" \\ud83d\\ude80"'),
                "quotes": 'He said "hi" [x] {y} \\ ] } ,',
                "brackets": "[{\"not\": \"json\"}]",
                "unicode": "Zoë — 日本語 — 🚀 — \u2028\u2029",
                "ctl": "a\u0001b\tc\nd",
                "empty_obj": {}, "empty_arr": [], "nested": [[[]], [{}],
                                                             {"a": [{}]}],
                "null": None, "bools": [True, False]}),
            ev("api", k, event_data=Raw(
                '{ "spaced" :  [ 1 ,2 ] ,"x":{ } }')),
            ev("api", k, event_data=[1, "two", None, 3.25]),
            ev("api", k, event_data="just a string"),
            ev("api", k, event_type=None),
            ev("api", k, event_type=7),
            ev("api", k, org_id=org2["id"], org_name=org2["name"]),
        ])

        # Re-deliveries: the same events again in a later object.
        k = self.new_key_ms(org, "user", base)
        orig = [ev("user", k) for _ in range(4)]
        self.put_events(org, "user", k, orig + [orig[0]])
        k2 = self.new_key_ms(org, "user", base)
        changed = dict(orig[3])
        changed["event_data"] = {"edited": True}
        reordered = dict(reversed(list(orig[2].items())))
        self.put_events(org, "user", k2,
                        [orig[1], ev("user", k2), reordered, changed])
        # Same value, different whitespace.
        k3 = self.new_key_ms(org, "user", base)
        self.put_events(org, "user", k3, [orig[0]],
                        text=json.dumps([orig[0]], ensure_ascii=False,
                                        indent=1))
        # Re-delivered the next day: same directory while within the
        # window of its created_at day.
        if self.args.days > mid + 1:
            k4 = self.new_key_ms(org, "user", day_ms(mid + 1),
                                 near_midnight=True)
            self.put_events(org, "user", k4, [orig[1]])

        # Keys that are not deliveries: ignored.
        self.put_other("README.txt", b"not an audit log\n")
        self.put_other("%s/notes.txt" % org["id"], b"notes\n")
        self.put_other("%s/org-audit-logs-abc.json.gz" % org["id"], b"x")
        self.put_other("%s/audit-logs-%d.json.gz" % (org["id"], base), b"x")
        self.put_other("%s/ORG-audit-logs-%d.json.gz" % (org["id"], base),
                       b"x")
        self.put_other("%s/user-audit-logs-%d.json" % (org["id"], base),
                       b"[]")
        self.put_other("%s/api-audit-logs-%d.json.gz.tmp" % (org["id"], base),
                       b"x")
        self.put_other("%s/sub/org-audit-logs-%d.json.gz" % (org["id"], base),
                       gzip.compress(b"[]", mtime=0))
        self.put_other("stray key with spaces+plus.json.gz", b"x")


_DROP = object()


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Write a sample Wiv audit-log bucket mirror.")
    p.add_argument("out", help="output directory (created)")
    p.add_argument("--orgs", type=int, default=3)
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--end-date", default="2026-01-28",
                   help="last UTC day, YYYY-MM-DD (default %(default)s)")
    p.add_argument("--objects-per-day", type=int, default=2,
                   help="objects per org, type and day")
    p.add_argument("--events-per-object", type=int, default=6,
                   help="mean events per object")
    p.add_argument("--gaps", type=float, default=0.15,
                   help="chance that an org has no object of a type on a day")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--messy", action="store_true",
                   help="add bad objects, odd ids, odd timestamps, "
                   "re-deliveries and foreign keys")
    a = p.parse_args(argv)
    if a.orgs < 1 or a.days < 1 or a.objects_per_day < 1 or \
            a.events_per_object < 1:
        p.error("--orgs, --days, --objects-per-day, --events-per-object "
                "must be >= 1")
    try:
        datetime.date.fromisoformat(a.end_date)
    except ValueError:
        p.error("--end-date must be YYYY-MM-DD")
    g = Gen(a)
    orgs = g.run()
    print("orgs %d, objects %d (%d bad), other keys %d, events %d"
          % (len(orgs) + (1 if a.messy else 0), g.n_objects, g.n_bad,
             g.n_other, g.n_events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
