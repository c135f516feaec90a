// A CI platform's OpenID issuer for the machine-identity tests (issue 16): the real
// `oidc-provider` package plays what https://token.actions.githubusercontent.com is to GitHub
// Actions. The issuer under test trusts it through its real discovery document and JWKS, so a
// job's token is verified exactly as a real platform's would be; nothing is stubbed.
//
// Each "job" is one client of the provider, defined in a JSON file. A job gets its token with
// oidc-provider's own client_credentials grant and a resource indicator: the token is a JWT
// (RS256, the key made at start) whose `aud` is the resource the job asked for and whose
// claims are the job's (repository, ref, environment, workflow, ...), taken from the client's
// metadata, with a GitHub-shaped `sub`, `nbf` and `typ: JWT` header.
//
// Environment:
//   CI_PORT           port to listen on at 127.0.0.1 (0 or unset: any free port)
//   CI_JOBS_FILE      JSON: [{"client_id", "client_secret", "claims": {"repository", "ref",
//                     "environment", "workflow", "job_workflow_ref", "run_id", "actor", "sha",
//                     "repository_owner"}}]
//   CI_RUNNER_TOKEN   bearer token the runner endpoint requires (ACTIONS_ID_TOKEN_REQUEST_TOKEN)
//   CI_ADMIN_TOKEN    bearer token the admin endpoint requires
//   CI_TOKEN_TTL      lifetime of a job token in seconds (default 300)
// Prints `listening http://127.0.0.1:PORT` on stdout once it accepts connections.
//
// Endpoints besides the provider's own (discovery, /jwks, /token):
//   GET /github/token?audience=AUD&job=CLIENT_ID with `Authorization: bearer RUNNER_TOKEN`:
//       `{"value": JWT}`, the job's token obtained from the provider's token endpoint, as the
//       GitHub Actions runner's ACTIONS_ID_TOKEN_REQUEST_URL answers.
//   POST /admin/forge with `Authorization: Bearer ADMIN_TOKEN` and JSON
//       {"claims": {...}, "header": {...}?, "key": "published"|"unknown"|"none"|"hs256-jwks"}:
//       `{"value": JWT}` built by node:crypto, for the refusals the provider would never sign:
//       RS256 with the published key (expired, wrong audience, oversized), RS256 with a key the
//       JWKS does not have, `alg: none`, or HS256 keyed with the JWKS JSON text (the classic
//       key-confusion attack on verifiers that take the algorithm from the token).

import { createServer } from 'node:http';
import { createHmac, createPrivateKey, createSign, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`ci.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const runnerToken = env('CI_RUNNER_TOKEN');
const adminToken = env('CI_ADMIN_TOKEN');
const tokenTtl = Number(process.env.CI_TOKEN_TTL ?? 300);
const jobs = JSON.parse(readFileSync(env('CI_JOBS_FILE'), 'utf8'));
const secrets = new Map(jobs.map((j) => [j.client_id, j.client_secret]));

const KID = 'ci-rs256';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };
// A key of the same kind that the JWKS never publishes.
const unknownKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

// Resource indicators must be absolute URIs; an audience that is not one (GitHub allows any
// string) travels as `urn:ci-audience:<escaped>` and becomes the plain audience again.
const AUD_URN = 'urn:ci-audience:';
const toResource = (aud) => {
  try {
    new URL(aud);
    return aud;
  } catch {
    return `${AUD_URN}${encodeURIComponent(aud)}`;
  }
};
const fromResource = (r) => (r.startsWith(AUD_URN) ? decodeURIComponent(r.slice(AUD_URN.length)) : r);

const same = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

const readBody = (req) =>
  new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 1 << 20) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};

const b64 = (buf) => Buffer.from(buf).toString('base64url');

// The claims of a job, from its client's metadata.
const jobClaims = (client) => client?.jobClaims ?? client?.metadata?.().job_claims ?? {};

// GitHub's `sub`: the environment when the job has one, else the ref.
const githubSub = (c) =>
  c.environment ? `repo:${c.repository}:environment:${c.environment}` : `repo:${c.repository}:ref:${c.ref}`;

let provider;
let issuer;

const makeProvider = () =>
  new Provider(issuer, {
    clients: jobs.map((j) => ({
      client_id: j.client_id,
      client_secret: j.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      job_claims: j.claims ?? {},
    })),
    extraClientMetadata: {
      properties: ['job_claims'],
      validator(ctx, key, value) {
        if (key === 'job_claims' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
          throw new Error('job_claims must be an object');
        }
      },
    },
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A job must name its audience, as GitHub's runner always sends one.
        defaultResource: () => undefined,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: 'ci',
          audience: fromResource(resourceIndicator),
          accessTokenFormat: 'jwt',
          accessTokenTTL: tokenTtl,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const client = await provider.Client.find(token.clientId);
      return { ...jobClaims(client) };
    },
    formats: {
      customizers: {
        // oidc-provider sets `sub` to the client id for client_credentials; a customizer is
        // the supported way to give the JWT GitHub's shape instead.
        jwt: async (ctx, token, jwt) => {
          const client = await provider.Client.find(token.clientId);
          const claims = jobClaims(client);
          jwt.header = { typ: 'JWT' };
          jwt.payload.sub = githubSub(claims);
          jwt.payload.nbf = jwt.payload.iat;
          delete jwt.payload.client_id;
          delete jwt.payload.scope;
        },
      },
    },
  });

// A job's token, from the provider's own token endpoint over HTTP, as any client gets it.
async function jobToken(job, audience) {
  const secret = secrets.get(job);
  if (secret === undefined) return { status: 404, body: { error: 'no such job' } };
  const basic = Buffer.from(`${encodeURIComponent(job)}:${encodeURIComponent(secret)}`).toString('base64');
  const resp = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: toResource(audience), scope: 'ci' }),
  });
  const body = await resp.json();
  if (!resp.ok) return { status: resp.status, body };
  return { status: 200, body: { value: body.access_token } };
}

async function runner(req, res, url) {
  const auth = req.headers.authorization ?? '';
  // The runner sends `bearer` in lower case; accept either spelling.
  if (!same(auth.replace(/^Bearer /i, 'bearer '), `bearer ${runnerToken}`)) return json(res, 401, { message: 'Bad credentials' });
  const job = url.searchParams.get('job') ?? '';
  const audience = url.searchParams.get('audience') ?? issuer;
  const { status, body } = await jobToken(job, audience);
  return json(res, status, body);
}

async function jwksText() {
  const { jwks_uri: uri } = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  return (await fetch(uri)).text();
}

async function forge(req, res) {
  if (!same(req.headers.authorization ?? '', `Bearer ${adminToken}`)) return json(res, 401, {});
  const { claims = {}, header = {}, key = 'published' } = JSON.parse((await readBody(req)) || '{}');
  const alg = { published: 'RS256', unknown: 'RS256', none: 'none', 'hs256-jwks': 'HS256' }[key];
  if (!alg) return json(res, 400, { error: `unknown key kind ${key}` });
  const kid = key === 'unknown' ? 'unknown-rs256' : KID;
  const h = { alg, typ: 'JWT', ...(key === 'none' ? {} : { kid }), ...header };
  const input = `${b64(JSON.stringify(h))}.${b64(JSON.stringify(claims))}`;
  let signature = '';
  if (key === 'published' || key === 'unknown') {
    const signer = createSign('RSA-SHA256');
    signer.update(input);
    signature = b64(signer.sign(key === 'published' ? createPrivateKey({ key: jwk, format: 'jwk' }) : unknownKey));
  } else if (key === 'hs256-jwks') {
    signature = b64(createHmac('sha256', await jwksText()).update(input).digest());
  }
  return json(res, 200, { value: `${input}.${signature}` });
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  let handled;
  if (url.pathname === '/github/token' && req.method === 'GET') handled = runner(req, res, url);
  else if (url.pathname === '/admin/forge' && req.method === 'POST') handled = forge(req, res);
  else return provider.callback()(req, res);
  handled.catch((err) => {
    console.error(`ci.mjs: ${req.method} ${url.pathname}: ${err?.message ?? err}`);
    if (!res.headersSent) json(res, 500, { error: 'server_error' });
  });
});

server.listen(Number(process.env.CI_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  provider = makeProvider();
  provider.on('server_error', (ctx, err) => console.error(`ci.mjs: server_error ${err?.message}`));
  console.log(`listening ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
