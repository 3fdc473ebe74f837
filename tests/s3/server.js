#!/usr/bin/env node
// Local S3 for wivaudit's tests: s3rver on 127.0.0.1, and in front of it a
// proxy that verifies every request's SigV4 signature the way S3 does.
//
// s3rver checks only the access key id (any secret, any signature passes), so
// a test of signing or credentials against it alone proves nothing. The proxy
// recomputes each signature with AWS's own signer (@smithy/signature-v4) and
// answers S3's 403 XML errors, so a wrong secret or a signing bug fails here
// the way it would against AWS.
//
// Usage: node server.js [--secret S] [--region R] [--log FILE] [--dir DIR]
//                       [--faults FILE] [--token T]
//                       [--tls-key PEM --tls-cert PEM]
//   env: WIV_S3_SECRET (default S3RVER), WIV_S3_REGION (default us-east-1),
//        WIV_S3_LOG (request log: one "method<TAB>status<TAB>op<TAB>url" line
//        per request, op is list|get|head|put|other), WIV_S3_DIR (data dir;
//        default a fresh temp dir removed on exit), WIV_S3_FAULTS (a JSON
//        file of fault rules, re-read whenever it changes; see below),
//        WIV_S3_TOKEN (if set, every request must carry this session token
//        in a signed x-amz-security-token, as temporary credentials do),
//        WIV_S3_TLS_KEY and WIV_S3_TLS_CERT (PEM files: the proxy then
//        speaks HTTPS only).
// Prints "READY <proxy_port> <s3rver_port>" once both listen. Exits on
// SIGTERM/SIGINT, and when stdin is a pipe that gets closed.
'use strict';

// s3rver's continuation tokens use DES, which OpenSSL 3 only offers with the
// legacy provider; without it every truncated ListObjectsV2 page is a 500.
if (!process.execArgv.includes('--openssl-legacy-provider') &&
    !(process.env.NODE_OPTIONS || '').includes('--openssl-legacy-provider')) {
  const { spawn } = require('child_process');
  const child = spawn(process.execPath,
    ['--openssl-legacy-provider', ...process.execArgv, __filename,
      ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => child.kill(sig));
  }
  child.on('exit', (code, sig) => process.exit(code === null ? 1 : code));
  return;
}

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const os = require('os');
const path = require('path');

const S3rver = require('s3rver');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');
const { HttpRequest } = require('@smithy/protocol-http');

const ACCESS_KEY = 'S3RVER';
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_BODY = 256 * 1024 * 1024;
const EMPTY_SHA256 =
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function parseArgs(argv) {
  const opts = {
    secret: process.env.WIV_S3_SECRET || 'S3RVER',
    region: process.env.WIV_S3_REGION || 'us-east-1',
    log: process.env.WIV_S3_LOG || '',
    dir: process.env.WIV_S3_DIR || '',
    faults: process.env.WIV_S3_FAULTS || '',
    token: process.env.WIV_S3_TOKEN || '',
    'tls-key': process.env.WIV_S3_TLS_KEY || '',
    'tls-cert': process.env.WIV_S3_TLS_CERT || '',
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(secret|region|log|dir|faults|token|tls-key|tls-cert)$/
      .exec(argv[i]);
    if (!m || i + 1 >= argv.length) {
      process.stderr.write(`server.js: bad argument ${argv[i]}\n`);
      process.exit(2);
    }
    opts[m[1]] = argv[++i];
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function xmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  })[c]);
}

class S3Error extends Error {
  constructor(status, code, message, extra = {}, headers = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
    this.headers = headers;
  }

  toXML(requestId) {
    let body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
      `<Code>${xmlEscape(this.code)}</Code>` +
      `<Message>${xmlEscape(this.message)}</Message>`;
    for (const [k, v] of Object.entries(this.extra)) {
      body += `<${k}>${xmlEscape(v)}</${k}>`;
    }
    return body + `<RequestId>${requestId}</RequestId>` +
      `<HostId>${requestId}</HostId></Error>`;
  }
}

const denied = (msg) => new S3Error(403, 'AccessDenied', msg);
const malformed = (msg) =>
  new S3Error(400, 'AuthorizationHeaderMalformed', msg);

// "20260128T101500Z" -> Date, or null.
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return isNaN(d.getTime()) ? null : d;
}

// Query string -> { key: value | [values] }, percent-decoded; '+' stays a
// plus (SigV4 clients encode a space as %20).
function parseQuery(qs) {
  const query = {};
  if (!qs) return query;
  for (const part of qs.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawK = eq < 0 ? part : part.slice(0, eq);
    const rawV = eq < 0 ? '' : part.slice(eq + 1);
    let k;
    let v;
    try {
      k = decodeURIComponent(rawK);
      v = decodeURIComponent(rawV);
    } catch (e) {
      throw new S3Error(400, 'InvalidArgument',
        `Invalid percent-encoding in query: ${part}`);
    }
    if (Object.prototype.hasOwnProperty.call(query, k)) {
      query[k] = [].concat(query[k], v);
    } else {
      query[k] = v;
    }
  }
  return query;
}

// Header values by lower-case name, repeated headers joined with ',' as
// SigV4's canonical form wants (node's req.headers joins some with ', ').
function rawHeaderMap(rawHeaders) {
  const map = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const v = rawHeaders[i + 1];
    map.set(name, map.has(name) ? `${map.get(name)},${v}` : v);
  }
  return map;
}

function parseAuthorization(auth) {
  const sp = auth.indexOf(' ');
  const algorithm = sp < 0 ? auth : auth.slice(0, sp);
  if (algorithm !== 'AWS4-HMAC-SHA256') {
    if (algorithm === 'AWS') {
      throw new S3Error(400, 'InvalidRequest',
        'The authorization mechanism you have provided is not supported. ' +
        'Please use AWS4-HMAC-SHA256.');
    }
    throw malformed(`Unsupported authorization algorithm ${algorithm}`);
  }
  const parts = {};
  for (const comp of auth.slice(sp + 1).split(',')) {
    const c = comp.trim();
    const eq = c.indexOf('=');
    if (eq > 0) parts[c.slice(0, eq)] = c.slice(eq + 1);
  }
  for (const name of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!parts[name]) {
      throw malformed('The authorization header is malformed; ' +
        `missing ${name}.`);
    }
  }
  const cred = parts.Credential.split('/');
  if (cred.length !== 5 || cred[4] !== 'aws4_request') {
    throw malformed('The authorization header is malformed; the Credential ' +
      'is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/' +
      'aws4_request".');
  }
  return {
    accessKeyId: cred[0],
    shortDate: cred[1],
    region: cred[2],
    service: cred[3],
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

const sha256Hex = (buf) =>
  crypto.createHash('sha256').update(buf).digest('hex');

// Throws an S3Error unless req (with its whole body) carries a valid SigV4
// header signature for ACCESS_KEY and opts.secret.
async function verify(req, body) {
  const headers = rawHeaderMap(req.rawHeaders);
  const auth = headers.get('authorization');
  if (auth === undefined) {
    throw denied('Access Denied');
  }
  const a = parseAuthorization(auth);
  if (a.accessKeyId !== ACCESS_KEY) {
    throw new S3Error(403, 'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: a.accessKeyId });
  }
  if (opts.token) {
    const tok = headers.get('x-amz-security-token');
    if (tok === undefined) {
      throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id ' +
        'you provided does not exist in our records (temporary credentials ' +
        'need their session token).', { AWSAccessKeyId: a.accessKeyId });
    }
    if (tok !== opts.token) {
      throw new S3Error(400, 'InvalidToken',
        'The provided token is malformed or otherwise invalid.');
    }
  }
  const amzDate = headers.get('x-amz-date');
  const date = parseAmzDate(amzDate);
  if (!date) {
    throw denied('AWS authentication requires a valid Date or x-amz-date ' +
      'header');
  }
  if (Math.abs(Date.now() - date.getTime()) > MAX_SKEW_MS) {
    throw new S3Error(403, 'RequestTimeTooSkewed',
      'The difference between the request time and the current time is ' +
      'too large.', {
        RequestTime: amzDate,
        ServerTime: new Date().toISOString(),
        MaxAllowedSkewMilliseconds: MAX_SKEW_MS,
      });
  }
  if (a.shortDate !== amzDate.slice(0, 8)) {
    throw malformed('The authorization header is malformed; Invalid ' +
      `credential date "${a.shortDate}". This date is not the same as ` +
      'X-Amz-Date: "' + amzDate.slice(0, 8) + '".');
  }
  if (a.region !== opts.region) {
    throw new S3Error(400, 'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the region '${a.region}' is ` +
      `wrong; expecting '${opts.region}'`, { Region: opts.region },
      { 'x-amz-bucket-region': opts.region });
  }
  if (a.service !== 's3') {
    throw malformed('The authorization header is malformed; incorrect ' +
      `service "${a.service}". This endpoint belongs to "s3".`);
  }
  const signed = a.signedHeaders;
  if (!signed.includes('host')) {
    throw denied('There were headers present in the request which were not ' +
      'signed: host');
  }
  for (const h of headers.keys()) {
    if (h.startsWith('x-amz-') && !signed.includes(h)) {
      throw denied('There were headers present in the request which were ' +
        `not signed: ${h}`);
    }
  }
  const payloadHash = headers.get('x-amz-content-sha256');
  if (payloadHash === undefined) {
    throw new S3Error(400, 'InvalidRequest',
      'Missing required header for this request: x-amz-content-sha256');
  }
  if (payloadHash !== 'UNSIGNED-PAYLOAD') {
    if (!/^[0-9a-f]{64}$/.test(payloadHash)) {
      throw new S3Error(400, 'InvalidArgument',
        'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 ' +
        'value (streaming payloads are not supported by this test server).');
    }
    const actual = sha256Hex(body);
    if (actual !== payloadHash) {
      throw new S3Error(400, 'XAmzContentSHA256Mismatch',
        "The provided 'x-amz-content-sha256' header does not match what " +
        'was computed.', {
          ClientComputedContentSHA256: payloadHash,
          S3ComputedContentSHA256: actual,
        });
    }
  }

  // Sign exactly the client's SignedHeaders (a header it listed but did not
  // send is signed as absent, so the signature will not match).
  const toSign = {};
  for (const h of signed) {
    if (headers.has(h)) toSign[h] = headers.get(h);
  }
  const url = req.url;
  const q = url.indexOf('?');
  // S3 signs the path as sent: no normalisation, no second encoding.
  const request = new HttpRequest({
    method: req.method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    path: q < 0 ? url : url.slice(0, q),
    query: parseQuery(q < 0 ? '' : url.slice(q + 1)),
    headers: toSign,
  });
  const signer = new SignatureV4({
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: opts.secret },
    region: a.region,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
    applyChecksum: false,
  });
  const out = await signer.sign(request, {
    signingDate: date,
    signingRegion: a.region,
    signingService: 's3',
    signableHeaders: new Set(signed),
  });
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]+)/.exec(
    out.headers.authorization);
  const expectSig = m ? m[2] : '';
  const got = Buffer.from(a.signature);
  const want = Buffer.from(expectSig);
  const same = got.length === want.length && crypto.timingSafeEqual(got, want);
  if (!same || m[1] !== signed.join(';')) {
    const canonicalHeaders = {};
    for (const h of Object.keys(toSign)) {
      canonicalHeaders[h] = toSign[h].replace(/[\r\n]/g, ' ')
        .replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
    }
    canonicalHeaders['x-amz-date'] = amzDate;
    const canonical = signer.createCanonicalRequest(request, canonicalHeaders,
      payloadHash);
    const scope = `${a.shortDate}/${a.region}/s3/aws4_request`;
    const stringToSign = 'AWS4-HMAC-SHA256\n' + amzDate + '\n' + scope +
      '\n' + sha256Hex(canonical);
    throw new S3Error(403, 'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature ' +
      'you provided. Check your key and signing method.', {
        AWSAccessKeyId: a.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: a.signature,
        CanonicalRequest: canonical,
      });
  }
}

// What a request does, for the request log (path-style addressing).
function classify(method, url) {
  const q = url.indexOf('?');
  const p = q < 0 ? url : url.slice(0, q);
  const isObject = /^\/[^/]+\/./.test(p);
  if (method === 'GET') {
    if (isObject) return 'get';
    return p === '/' ? 'other' : 'list';
  }
  if (method === 'HEAD') return isObject ? 'head' : 'other';
  if (method === 'PUT' && isObject) return 'put';
  return 'other';
}

let logFd = null;
if (opts.log) logFd = fs.openSync(opts.log, 'a');

function logRequest(req, status, note) {
  if (logFd === null) return;
  const line = [req.method, status, classify(req.method, req.url), req.url]
    .join('\t') + (note ? `\t${note}` : '') + '\n';
  fs.writeSync(logFd, line);
}

// Fault injection, applied to correctly signed requests only. The faults
// file holds a JSON array of rules, tried in order; the first that fires
// decides:
//   { "op": "get"|"list"|"head"|"put"|"other"|"any" (default "any"),
//     "match": "substring of the URL" (optional),
//     "action": "status"|"drop"|"truncate"|"delay",
//     "status": 503, "code": "SlowDown", "message": "...",   (for "status")
//     "delay_ms": 5000,                                       (for "delay")
//     "every": N (fire on every Nth matching request, default 1),
//     "times": M (fire at most M times, default unlimited),
//     "per_url": true (count "every" and "times" per URL: with "times": 2,
//                      the first two tries of each object fail) }
// "drop" closes the connection without an answer; "truncate" sends the
// headers and half the body, then closes; "delay" waits, then forwards.
// Counters restart whenever the file changes.
const FAULT_MESSAGES = {
  SlowDown: 'Please reduce your request rate.',
  InternalError: 'We encountered an internal error. Please try again.',
  ServiceUnavailable: 'Service is unable to handle request.',
  AccessDenied: 'Access Denied',
};
const faultState = { mtimeMs: -1, size: -1, ino: -1, rules: [] };

function loadFaults() {
  if (!opts.faults) return [];
  let st;
  try {
    st = fs.statSync(opts.faults);
  } catch (e) {
    faultState.rules = [];
    faultState.mtimeMs = -1;
    return [];
  }
  if (st.mtimeMs !== faultState.mtimeMs || st.size !== faultState.size ||
      st.ino !== faultState.ino) {
    faultState.mtimeMs = st.mtimeMs;
    faultState.size = st.size;
    faultState.ino = st.ino;
    try {
      const rules = JSON.parse(fs.readFileSync(opts.faults, 'utf8') || '[]');
      faultState.rules = (Array.isArray(rules) ? rules : []).map(
        (r) => ({ ...r, counts: new Map() }));
    } catch (e) {
      process.stderr.write(`server.js: bad faults file: ${e.message}\n`);
      faultState.rules = [];
    }
  }
  return faultState.rules;
}

function pickFault(req) {
  const op = classify(req.method, req.url);
  for (const r of loadFaults()) {
    if (r.op && r.op !== 'any' && r.op !== op) continue;
    if (r.match && !req.url.includes(r.match)) continue;
    const id = r.per_url ? req.url : '';
    let c = r.counts.get(id);
    if (!c) r.counts.set(id, c = { seen: 0, fired: 0 });
    if (r.times !== undefined && c.fired >= r.times) continue;
    c.seen++;
    if (c.seen % (r.every || 1) !== 0) continue;
    c.fired++;
    return r;
  }
  return null;
}

// ListObjectsV2 with encoding-type=url, which s3rver ignores: S3 then
// url-encodes Key, Prefix (top-level and in CommonPrefixes), StartAfter and
// Delimiter, never the continuation tokens, and says <EncodingType>url. The
// encoding is S3's form encoding: letters, digits, "-_.*/" stay, a space is
// "+", every other byte of the UTF-8 is %XX (so "+" and "~" are encoded).
// Without it, a key holding a control byte makes the XML unparseable.
function s3UrlEncode(s) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.*/]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function xmlUnescape(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g,
    (all, e) => {
      if (e[0] === '#') {
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16)
          : parseInt(e.slice(1), 10));
      }
      return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
    });
}

function wantsUrlEncoding(req) {
  const q = req.url.indexOf('?');
  if (q < 0 || classify(req.method, req.url) !== 'list') return false;
  return parseQuery(req.url.slice(q + 1))['encoding-type'] === 'url';
}

function urlEncodeListing(xml) {
  const out = xml.replace(
    /<(Key|Prefix|StartAfter|Delimiter)>([\s\S]*?)<\/\1>/g,
    (all, tag, text) => `<${tag}>${s3UrlEncode(xmlUnescape(text))}</${tag}>`);
  return out.replace('<IsTruncated>',
    '<EncodingType>url</EncodingType><IsTruncated>');
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection',
  'transfer-encoding', 'te', 'trailer', 'upgrade']);

// s3rver ignores If-Match; S3 answers 412 when the object's ETag is not the
// one asked for (an object replaced since it was listed).
function etagMatches(ifMatch, upRes) {
  if (!ifMatch || (upRes.statusCode !== 200 && upRes.statusCode !== 206)) {
    return true;
  }
  const unquote = (s) => String(s || '').trim().replace(/^"(.*)"$/, '$1');
  return ifMatch.split(',').some((t) => t.trim() === '*' ||
    unquote(t) === unquote(upRes.headers.etag));
}

function main() {
  const ownDir = !opts.dir;
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'wivs3-'));
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: dir,
    silent: true,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let s3port = 0;

  function sendError(req, res, err) {
    const requestId = crypto.randomBytes(8).toString('hex').toUpperCase();
    const s3err = err instanceof S3Error ? err
      : new S3Error(500, 'InternalError', `Proxy error: ${err.message}`);
    const xml = s3err.toXML(requestId);
    logRequest(req, s3err.status, s3err.code);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(s3err.status, {
      'Content-Type': 'application/xml',
      'Content-Length': req.method === 'HEAD' ? 0 : Buffer.byteLength(xml),
      'x-amz-request-id': requestId,
      ...s3err.headers,
    });
    res.end(req.method === 'HEAD' ? undefined : xml);
  }

  function forward(req, res, body, truncate) {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(k)) headers[k] = v;
    }
    headers['content-length'] = String(body.length);
    const up = http.request({
      host: '127.0.0.1',
      port: s3port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    }, (upRes) => {
      if (!etagMatches(req.headers['if-match'], upRes)) {
        upRes.resume();
        sendError(req, res, new S3Error(412, 'PreconditionFailed',
          'At least one of the pre-conditions you specified did not hold',
          { Condition: 'If-Match' }));
        return;
      }
      const outHeaders = {};
      for (const [k, v] of Object.entries(upRes.headers)) {
        if (!HOP_BY_HOP.has(k)) outHeaders[k] = v;
      }
      if (upRes.statusCode === 200 && !truncate && wantsUrlEncoding(req)) {
        const parts = [];
        upRes.on('data', (c) => parts.push(c));
        upRes.on('end', () => {
          const xml = urlEncodeListing(Buffer.concat(parts).toString('utf8'));
          outHeaders['content-length'] = String(Buffer.byteLength(xml));
          logRequest(req, upRes.statusCode);
          res.writeHead(upRes.statusCode, outHeaders);
          res.end(xml);
        });
        upRes.on('error', () => res.destroy());
        return;
      }
      res.writeHead(upRes.statusCode, outHeaders);
      if (truncate) {
        logRequest(req, upRes.statusCode, 'FAULT:truncate');
        const half = Math.floor(Number(upRes.headers['content-length'] || 0)
          / 2);
        let sent = 0;
        upRes.on('data', (c) => {
          const room = half - sent;
          if (room > 0) {
            res.write(c.subarray(0, room));
            sent += Math.min(room, c.length);
          }
        });
        upRes.on('end', () => {
          // Let the half body reach the client before the cut.
          setTimeout(() => res.socket && res.socket.destroy(), 50);
        });
        return;
      }
      logRequest(req, upRes.statusCode);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', (err) => sendError(req, res, err));
    up.end(body);
  }

  const tls = opts['tls-key'] && opts['tls-cert'];
  const handler = (req, res) => {
    const chunks = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (tooBig) {
        sendError(req, res, new S3Error(400, 'EntityTooLarge',
          'Your proposed upload exceeds the maximum allowed size'));
        return;
      }
      const body = Buffer.concat(chunks);
      verify(req, body).then(() => {
        const f = pickFault(req);
        if (!f) {
          forward(req, res, body);
        } else if (f.action === 'drop') {
          logRequest(req, 0, 'FAULT:drop');
          req.socket.destroy();
        } else if (f.action === 'truncate') {
          forward(req, res, body, true);
        } else if (f.action === 'delay') {
          logRequest(req, 0, `FAULT:delay ${f.delay_ms || 0}`);
          setTimeout(() => {
            if (!res.destroyed && !req.socket.destroyed) {
              forward(req, res, body);
            }
          }, f.delay_ms || 0);
        } else {
          sendError(req, res, new S3Error(f.status || 503,
            f.code || 'SlowDown', f.message || FAULT_MESSAGES[f.code] ||
            'Injected fault'));
        }
      }, (err) => sendError(req, res, err));
    });
  };
  const proxy = tls
    ? https.createServer({ key: fs.readFileSync(opts['tls-key']),
      cert: fs.readFileSync(opts['tls-cert']) }, handler)
    : http.createServer(handler);
  // Longer than a client's idle reuse window, so a kept-alive connection is
  // not closed under a request in flight.
  proxy.keepAliveTimeout = 30000;
  proxy.headersTimeout = 35000;

  let closing = false;
  function shutdown(code) {
    if (closing) return;
    closing = true;
    proxy.close();
    proxy.closeAllConnections?.();
    agent.destroy();
    const done = () => {
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    };
    Promise.resolve(s3.close()).then(done, done);
    setTimeout(done, 3000).unref();
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => shutdown(0));
  }
  try {
    const st = fs.fstatSync(0);
    if (st.isFIFO() || st.isSocket()) {
      process.stdin.on('end', () => shutdown(0));
      process.stdin.on('error', () => shutdown(0));
      process.stdin.resume();
    }
  } catch (e) {
    // no stdin at all: only signals stop us
  }

  s3.run().then((addr) => {
    s3port = addr.port;
    proxy.listen(0, '127.0.0.1', () => {
      process.stdout.write(`READY ${proxy.address().port} ${s3port}\n`);
    });
  }, (err) => {
    process.stderr.write(`server.js: s3rver failed: ${err.stack || err}\n`);
    shutdown(1);
  });
}

main();
