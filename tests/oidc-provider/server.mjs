// The upstream OpenID provider of the end-to-end tests: `oidc-provider` (OpenID Certified), with
// one confidential client, RS256 keys made at start, accounts from a JSON file, a plain HTML
// login form, automatic consent, and a small admin API the tests use to change a person's
// groups or disable them (a disabled person is not found, so the provider refuses refreshes).
//
// Environment:
//   OIDC_PORT           port to listen on at 127.0.0.1 (0 or unset: any free port)
//   OIDC_CLIENT_ID      the issuer's client id
//   OIDC_CLIENT_SECRET  its secret
//   OIDC_REDIRECT_URI   the issuer's callback URL
//   OIDC_ACCOUNTS_FILE  JSON: [{"username", "password", "email", "groups": [...]}]
//   OIDC_ADMIN_TOKEN    bearer token required by the admin API
//   OIDC_ISSUER         optional: the issuer URL to announce, when the provider is reached
//                       through a proxy (the tests' fault-injecting one) at that address
// Prints `listening http://127.0.0.1:PORT` on stdout once it accepts connections.
//
// Admin API: POST /admin/accounts/<username> with JSON {"groups": [...]} and/or
// {"disabled": true|false}; answers the account as JSON. POST /admin/rotate-key-same-kid
// replaces the signing key by a new one under the same key id (as some providers do), keeping
// every session, grant and token.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`server.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const clientId = env('OIDC_CLIENT_ID');
const clientSecret = env('OIDC_CLIENT_SECRET');
const redirectUri = env('OIDC_REDIRECT_URI');
const adminToken = env('OIDC_ADMIN_TOKEN');
const accounts = new Map(
  JSON.parse(readFileSync(env('OIDC_ACCOUNTS_FILE'), 'utf8')).map((a) => [
    a.username,
    { ...a, groups: a.groups ?? [], disabled: false },
  ]),
);

const newJwk = () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-rs256', alg: 'RS256', use: 'sig' };
};
const cookieKeys = [randomBytes(32).toString('hex')];
// One in-memory store for every Provider instance, so that a key rotation (a new instance)
// keeps sessions, grants and tokens.
const adapter = createMemoryAdapter(0);

const same = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const readBody = (req) =>
  new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 65536) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });

const page = (res, status, title, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`);
};

const loginForm = (uid, clientName, error) => `
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<p>Sign in to continue to ${escape(clientName)}.</p>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input type="text" name="username" autofocus></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>`;

let provider;

async function consent(req, res, details, accountId) {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  // Everything asked for is granted, offline_access included.
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  const missing = details.prompt?.details ?? {};
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

async function interaction(req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'Wrong interaction', '');
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'consent') {
      const grantId = await consent(req, res, details, details.session.accountId);
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    return page(res, 200, 'Sign in', loginForm(uid, details.params.client_id));
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'the person cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const account = accounts.get(form.get('username') ?? '');
    if (!account || account.disabled || !same(account.password, form.get('password') ?? '')) {
      return page(res, 401, 'Sign in', loginForm(uid, details.params.client_id, 'Wrong username or password.'));
    }
    const accountId = `sub-${account.username}`;
    const grantId = await consent(req, res, details, accountId);
    return provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }
  return page(res, 404, 'Not found', '');
}

async function admin(req, res, url) {
  const auth = req.headers.authorization ?? '';
  if (!same(auth, `Bearer ${adminToken}`)) {
    res.writeHead(401).end();
    return;
  }
  if (url.pathname === '/admin/rotate-key-same-kid' && req.method === 'POST') {
    // A new Provider with a new key under the same kid. The in-memory adapter's storage is
    // shared by every instance in the process, so sessions, grants and tokens carry over.
    provider = makeProvider(provider.issuer, newJwk());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ rotated: true }));
    return;
  }
  const username = decodeURIComponent(url.pathname.slice('/admin/accounts/'.length));
  const account = accounts.get(username);
  if (req.method !== 'POST' || !account) {
    res.writeHead(404).end();
    return;
  }
  const change = JSON.parse((await readBody(req)) || '{}');
  if (Array.isArray(change.groups)) account.groups = change.groups.map(String);
  if (typeof change.disabled === 'boolean') account.disabled = change.disabled;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ username, groups: account.groups, disabled: account.disabled }));
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  let handled;
  if (url.pathname.startsWith('/interaction/')) handled = interaction(req, res, url);
  else if (url.pathname.startsWith('/admin/')) handled = admin(req, res, url);
  else return provider.callback()(req, res);
  handled.catch((err) => {
    console.error(`server.mjs: ${req.method} ${url.pathname}: ${err?.message ?? err}`);
    if (!res.headersSent) page(res, 500, 'Error', `<p>${escape(err?.message ?? 'error')}</p>`);
  });
});

const makeProvider = (issuer, jwk) => {
  const p = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    adapter,
    jwks: { keys: [jwk] },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // Scope-requested claims go into the ID token too (the issuer reads groups from it).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    ttl: { AccessToken: 3600, IdToken: 3600, RefreshToken: 86400, Interaction: 600, Session: 86400, Grant: 86400 },
    // A disabled or unknown person is not found: logins fail and refreshes are refused.
    findAccount: (ctx, id) => {
      const account = [...accounts.values()].find((a) => `sub-${a.username}` === id);
      if (!account || account.disabled) return undefined;
      return {
        accountId: id,
        claims: () => ({
          sub: id,
          preferred_username: account.username,
          name: account.username,
          email: account.email,
          email_verified: true,
          groups: account.groups,
        }),
      };
    },
  });
  // Refresh tokens keep working for the whole test; the issuer stores the rotated one anyway.
  p.on('server_error', (ctx, err) => console.error(`server.mjs: server_error ${err?.message}`));
  return p;
};

server.listen(Number(process.env.OIDC_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
  provider = makeProvider(issuer, newJwk());
  // The address it listens on, then its issuer (the same unless OIDC_ISSUER names a proxy).
  console.log(`address 127.0.0.1:${port}`);
  console.log(`listening ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
