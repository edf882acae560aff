// A real OAuth 2 token issuer for the integration tests and benchmarks:
// oauth2-mock-server (npm, pinned in package.json) behind a thin HTTP
// wrapper that counts JWKS fetches and lets a test rotate the signing key
// or take the JWKS endpoint down.  See mock_idp.py for the Python side.
//
//   node mock_idp.mjs PORT [ALG]
//
// Endpoints, on 127.0.0.1:PORT (issuer "http://127.0.0.1:PORT"):
//   GET  /jwks, POST /token, ...   oauth2-mock-server's own endpoints
//   POST /_ctl/rotate[?keep_old=1] a new signing key; the old one stays in
//                                  the JWKS only with keep_old
//   POST /_ctl/jwks?mode=up|down[&delay_ms=N][&extra_keys=N]
//                                  down: /jwks answers 503; delay_ms:
//                                  /jwks answers that much later;
//                                  extra_keys: N more EC keys published
//                                  (a large key set, for benchmarks)
//   GET  /_ctl/stats               {"jwks_gets": N, "kid": K, "mode": M}
//
// The token endpoint (client_credentials) takes extra form fields, applied
// by the beforeTokenSigning hook: sub (default client_id), act (actor ids,
// current first, comma separated: becomes a nested RFC 8693 act claim),
// claims (a JSON object merged into the payload).
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2]);
const alg = process.argv[3] || 'ES256';
const issuerUrl = `http://127.0.0.1:${port}`;

let jwksGets = 0;
let jwksMode = 'up';
let jwksDelayMs = 0;
let current = null;
let retired = [];
let extra = [];

function actClaim(list) {
  let act;
  for (const sub of list.slice().reverse()) {
    act = act ? { sub, act } : { sub };
  }
  return act;
}

async function newIssuer() {
  const server = new OAuth2Server();
  const key = await server.issuer.keys.generate(alg);
  server.issuer.url = issuerUrl;
  server.service.on('beforeTokenSigning', (token, req) => {
    const body = req.body || {};
    token.payload.sub = body.sub || body.client_id || 'client';
    if (body.client_id) token.payload.client_id = body.client_id;
    if (body.act) token.payload.act = actClaim(body.act.split(','));
    if (body.claims) Object.assign(token.payload, JSON.parse(body.claims));
  });
  return { server, kid: key.kid };
}

function sendJson(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function serveJwks(req, res) {
  if (jwksMode === 'down') {
    sendJson(res, 503, { error: 'jwks endpoint down (test)' });
  } else if (retired.length || extra.length) {
    sendJson(res, 200, {
      keys: [...current.server.issuer.keys.toJSON(), ...retired, ...extra],
    });
  } else {
    current.server.service.requestHandler(req, res);
  }
}

async function control(req, res, url) {
  if (url.pathname === '/_ctl/stats') {
    sendJson(res, 200, { jwks_gets: jwksGets, kid: current.kid,
                         mode: jwksMode, delay_ms: jwksDelayMs });
  } else if (url.pathname === '/_ctl/rotate') {
    const old = current;
    current = await newIssuer();
    if (url.searchParams.get('keep_old') === '1') {
      retired.push(...old.server.issuer.keys.toJSON());
    } else {
      retired = [];
    }
    sendJson(res, 200, { kid: current.kid, old_kid: old.kid });
  } else if (url.pathname === '/_ctl/jwks') {
    jwksMode = url.searchParams.get('mode') || jwksMode;
    jwksDelayMs = Number(url.searchParams.get('delay_ms') || 0);
    const n = Number(url.searchParams.get('extra_keys') || 0);
    extra = [];
    for (let i = 0; i < n; i++) {
      const { publicKey } = generateKeyPairSync('ec',
                                                { namedCurve: 'P-256' });
      extra.push({ ...publicKey.export({ format: 'jwk' }),
                   kid: `extra-${i}`, alg: 'ES256', use: 'sig' });
    }
    sendJson(res, 200, { mode: jwksMode, delay_ms: jwksDelayMs });
  } else {
    sendJson(res, 404, { error: 'unknown control' });
  }
}

current = await newIssuer();

const wrapper = http.createServer((req, res) => {
  const url = new URL(req.url, issuerUrl);
  if (url.pathname.startsWith('/_ctl/')) {
    control(req, res, url).catch((e) => sendJson(res, 500,
                                                 { error: String(e) }));
    return;
  }
  if (url.pathname === '/jwks' && req.method === 'GET') {
    jwksGets++;
    if (jwksDelayMs > 0) setTimeout(() => serveJwks(req, res), jwksDelayMs);
    else serveJwks(req, res);
    return;
  }
  current.server.service.requestHandler(req, res);
});
wrapper.keepAliveTimeout = 60000;
wrapper.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: true, issuer: issuerUrl,
                               kid: current.kid }));
});
process.on('SIGTERM', () => process.exit(0));
