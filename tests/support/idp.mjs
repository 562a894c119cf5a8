// A test identity provider that looks like an Amazon Cognito user pool, built on
// oidc-provider (OpenID Certified). Test-only: in-memory state, fixed users, one password.
//
//   node tests/support/idp.mjs [--port N] [--pool ID] [--redirect-uri URL]... [--logout-uri URL]...
//                              [--id-token-ttl S] [--access-token-ttl S]
//                              [--moto-endpoint URL --moto-pool ID]
//
// Prints exactly one JSON line to stdout when listening: {"port":N,"issuer":"http://127.0.0.1:N/<pool>"}.
// Everything else (oidc-provider warnings, errors) goes to stderr. See README.md for the control API.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { motoUsers } from './moto-users.mjs';

// ---------------------------------------------------------------- command line

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    pool: { type: 'string', default: 'eu-central-1_TestPool1' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'logout-uri': { type: 'string', multiple: true, default: [] },
    'id-token-ttl': { type: 'string', default: '3600' },
    'access-token-ttl': { type: 'string', default: '3600' },
    // Overrides discovery's id_token_signing_alg_values_supported (comma-separated), for
    // relying parties that take their algorithm allow-list from it.
    'advertise-algs': { type: 'string' },
    // A plain OpenID Connect provider rather than a Cognito-shaped one: ID tokens carry
    // `groups` and `preferred_username`, and none of Cognito's own claims (token_use,
    // cognito:username, cognito:groups). For tests with a second, non-Cognito provider.
    'plain-oidc': { type: 'boolean', default: false },
    // The users of this moto pool instead of the fixed ones (moto-users.mjs).
    'moto-endpoint': { type: 'string' },
    'moto-pool': { type: 'string' },
  },
  strict: true,
});

const positiveInt = (name) => {
  const n = Number(args[name]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
};
const PORT = Number(args.port);
const POOL = args.pool;
const MOUNT = `/${POOL}`;
// oidc-provider refuses clients without redirect URIs; the placeholder only matters if none is given.
const REDIRECT_URIS = args['redirect-uri'].length ? args['redirect-uri'] : ['http://127.0.0.1/callback'];
const LOGOUT_URIS = args['logout-uri'];
const ID_TOKEN_TTL = positiveInt('id-token-ttl');
const ACCESS_TOKEN_TTL = positiveInt('access-token-ttl');

if (Boolean(args['moto-endpoint']) !== Boolean(args['moto-pool'])) throw new Error('--moto-endpoint and --moto-pool go together');
const MOTO = args['moto-endpoint'] ? motoUsers({ endpoint: args['moto-endpoint'], pool: args['moto-pool'] }) : null;

const log = (...a) => console.error('[idp]', ...a); // stdout is reserved for the one JSON line

// ---------------------------------------------------------------- users

const PASSWORD = 'Passw0rd!';
const initialUsers = () => new Map([
  ['alice', { sub: '11111111-1111-4111-8111-111111111111', email: 'alice@example.com', email_verified: true, groups: ['admins', 'staff'], enabled: true }],
  // Cognito sometimes sends email_verified as the string "true": keep bob that way on purpose.
  ['bob', { sub: '22222222-2222-4222-8222-222222222222', email: 'bob@example.com', email_verified: 'true', groups: ['staff'], enabled: true }],
  ['carol', { sub: '33333333-3333-4333-8333-333333333333', email: 'carol@example.com', email_verified: false, groups: [], enabled: true }],
]);
let users = initialUsers();

const userBySub = (sub) => [...users].find(([, u]) => u.sub === sub);

// oidc-provider's account lookup. Returning undefined for a disabled or deleted user is what
// makes a refresh grant fail with invalid_grant ("referenced account not found"), as in Cognito.
// With --moto-*, the user is looked up in moto at every token and refresh instead.
async function findAccount(_ctx, sub) {
  if (MOTO) {
    // Asked at every token and refresh, so the claims are the pool's current ones.
    const user = await MOTO.bySub(sub);
    return user?.enabled ? accountOf(sub, user.username, async () => user) : undefined;
  }
  const found = userBySub(sub);
  if (!found || !found[1].enabled) return undefined;
  const [username] = found;
  return accountOf(sub, username, async () => users.get(username));
}

// `current()` reads the user record at token time, so refreshed ID tokens carry the CURRENT
// groups.
function accountOf(sub, username, current) {
  return {
    accountId: sub,
    async claims(use) {
      const u = await current();
      const claims = { sub, email: u.email, email_verified: u.email_verified };
      if (use === 'id_token' && args['plain-oidc']) {
        claims.preferred_username = username;
        claims.groups = [...u.groups];
      } else if (use === 'id_token') {
        claims.token_use = 'id';
        claims['cognito:username'] = username;
        // Cognito leaves the claim out entirely when the user is in no group.
        if (u.groups.length) claims['cognito:groups'] = [...u.groups];
      } else {
        claims.username = username; // Cognito's userInfo answer has "username"
      }
      return claims;
    },
  };
}

// ---------------------------------------------------------------- stats

const zeroStats = () => ({
  token_requests: 0, authorization_code_grants: 0, refresh_grants: 0, refresh_failures: 0,
  revocations: 0, logouts: 0, userinfo_requests: 0,
});
let stats = zeroStats();

// ---------------------------------------------------------------- storage shared by all Provider instances

// Key rotation rebuilds the Provider (its keystore is fixed at construction), so sessions,
// grants, codes and refresh tokens live here, outside any one instance, and survive the swap.
// A plain Map rather than oidc-provider's LRU memory adapter, which would evict under load.
const store = new Map(); // "Model:id" -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set of store keys
const sessionUids = new Map(); // session uid -> session id

class SharedAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload: structuredClone(payload), expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
  }

  async find(id) {
    const key = this.key(id);
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return structuredClone(entry.payload);
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() { return undefined; } // device flow is off

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// ---------------------------------------------------------------- signing keys

// keys[0] signs; older keys stay published (unless dropped) so already-issued tokens verify.
let keys = [];
// Keys dropped from the JWKS by rotate-keys?drop_old=1, newest first (for forged tokens).
let withdrawnKeys = [];
let signingKeyHidden = false;
// While set, the token endpoint answers this HTTP status instead of a grant (an outage or
// throttling at the provider, not a refusal of the grant).
let tokenOutage = 0;
// While set, discovery leaves out revocation_endpoint and end_session_endpoint, as Cognito's
// documents fetched before 2024 did.
let legacyDiscovery = false;
// While set, the token endpoint waits this many milliseconds after a grant before it answers.
let tokenDelayMs = 0;
// While set, a refresh grant hands out a new refresh token and consumes the one used (Cognito
// with refresh-token rotation on; Keycloak, Okta, Auth0): using that one again is a replay,
// answered invalid_grant, and ends its whole grant.
let rotateRefresh = false;

// Test-only RSA keys shipped in keys/, used in turn. Node 20's generateKeyPairSync can
// deadlock in a GC callback (seen here: the idp hung before printing its port), so no key
// is generated at run time. The kid below still differs at every use.
const KEY_DIR = new URL('./keys/', import.meta.url);
const KEY_PEMS = fs
  .readdirSync(KEY_DIR)
  .filter((f) => f.endsWith('.pem'))
  .sort()
  .map((f) => fs.readFileSync(new URL(f, KEY_DIR)));
let nextKey = Math.floor(Math.random() * KEY_PEMS.length);

function newSigningKey() {
  const privateKey = crypto.createPrivateKey(KEY_PEMS[nextKey++ % KEY_PEMS.length]);
  const jwk = privateKey.export({ format: 'jwk' });
  // Cognito kids look like base64 of a hash ("abc...xyz="); imitate that, padding included.
  const kid = crypto.createHash('sha256').update(jwk.n).update(crypto.randomBytes(8)).digest('base64');
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

const publicJwk = ({ kty, e, n, kid, alg, use }) => ({ alg, e, kid, kty, n, use });

function servedJwks() {
  const published = signingKeyHidden ? keys.slice(1) : keys;
  return { keys: [...published.map(publicJwk), ...extraKeys.map((k) => k.published)] };
}

// ---------------------------------------------------------------- forged tokens (test-only)

// Keys of the provider's own that are not its signing key: published in the JWKS with
// whatever members a test asks for (no `alg`, `use: "enc"`, an EC key...), or not at all.
let extraKeys = []; // { kid, privateKey, published }
// One defect to put into the next token response (see forge()); null when none is queued.
let defect = null;

const EC_KEYS = {
  ec256: fs.readFileSync(new URL('./ec/p256.key', KEY_DIR)),
  ec384: fs.readFileSync(new URL('./ec/p384.key', KEY_DIR)),
};
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const fromB64u = (text) => JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));

// A private key by role: the current signing key, the one before it (withdrawn by
// rotate-keys?drop_old=1), an RSA key that is in no JWKS, or a key published just for this.
function forgeKey(spec) {
  const rsa = (jwk) => crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  switch (spec.key ?? 'current') {
    case 'current':
      return { privateKey: rsa(keys[0]), kid: keys[0].kid };
    case 'withdrawn': {
      if (!withdrawnKeys.length) throw new Error('no key has been withdrawn (rotate-keys?drop_old=1 first)');
      const k = withdrawnKeys[0];
      return { privateKey: rsa(k), kid: k.kid };
    }
    case 'foreign':
    case 'foreign-kid': {
      // A test key whose modulus is not among the published ones.
      const used = new Set([...keys, ...withdrawnKeys].map((k) => k.n));
      const pem = KEY_PEMS.find((p) => !used.has(crypto.createPrivateKey(p).export({ format: 'jwk' }).n));
      if (!pem) throw new Error('every test key is published');
      const kid = spec.key === 'foreign' ? keys[0].kid : `foreign-${crypto.randomBytes(6).toString('hex')}`;
      return { privateKey: crypto.createPrivateKey(pem), kid };
    }
    case 'extra-rsa':
    case 'ec256':
    case 'ec384': {
      const privateKey = spec.key === 'extra-rsa'
        ? crypto.createPrivateKey(KEY_PEMS.find((p) => !keys.some((k) => k.n === crypto.createPrivateKey(p).export({ format: 'jwk' }).n)) ?? KEY_PEMS[0])
        : crypto.createPrivateKey(EC_KEYS[spec.key]);
      const kid = `extra-${crypto.randomBytes(6).toString('hex')}`;
      const { kty, n, e, crv, x, y } = privateKey.export({ format: 'jwk' });
      const defaults = kty === 'RSA' ? { alg: 'RS256' } : { alg: spec.key === 'ec256' ? 'ES256' : 'ES384' };
      const published = Object.fromEntries(Object.entries({ kty, n, e, crv, x, y, kid, use: 'sig', ...defaults, ...(spec.jwk ?? {}) })
        .filter(([, v]) => v !== undefined && v !== null));
      extraKeys.push({ kid, privateKey, published });
      return { privateKey, kid };
    }
    default:
      throw new Error(`unknown key ${spec.key}`);
  }
}

function signWith(alg, privateKey, input) {
  const hash = { 256: 'sha256', 384: 'sha384', 512: 'sha512' }[alg.slice(2)];
  if (alg === 'none') return Buffer.alloc(0);
  if (alg.startsWith('HS')) {
    // The classic confusion: HMAC keyed with the provider's PUBLIC key.
    const pub = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' });
    return crypto.createHmac(hash, pub).update(input).digest();
  }
  if (alg.startsWith('RS')) return crypto.sign(hash, Buffer.from(input), privateKey);
  if (alg.startsWith('PS')) {
    return crypto.sign(hash, Buffer.from(input), { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST });
  }
  if (alg.startsWith('ES')) return crypto.sign(hash, Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  throw new Error(`cannot sign with ${alg}`);
}

// JSON text with `extra` (raw member text, e.g. ',"sub":"x"') put before its closing brace.
const withRaw = (obj, extra) => (extra ? JSON.stringify(obj).replace(/}$/, `${extra}}`) : JSON.stringify(obj));
const merge = (obj, changes) => {
  for (const [k, v] of Object.entries(changes ?? {})) {
    if (v === null) delete obj[k];
    else obj[k] = v;
  }
  return obj;
};

// A token like `genuine` (a real ID token of this provider) with one defect, signed as asked.
// target "access_token": a Cognito-shaped access token (token_use access, client_id, no aud)
// made from the ID token's claims.
function forge(genuine, spec) {
  const [h, p] = genuine.split('.');
  const header = fromB64u(h);
  let claims = fromB64u(p);
  if (spec.target === 'access_token') {
    const { sub, iss, exp, iat, auth_time: authTime, jti } = claims;
    claims = {
      sub, iss, client_id: claims.aud, token_use: 'access', scope: 'openid email', auth_time: authTime,
      exp, iat, jti, username: claims['cognito:username'], 'cognito:groups': claims['cognito:groups'],
    };
  }
  merge(claims, spec.claims);
  const alg = spec.alg ?? 'RS256';
  const { privateKey, kid } = forgeKey(spec);
  merge(Object.assign(header, { alg, kid }), spec.header);
  if (spec.jwe) {
    const jweHeader = b64u(JSON.stringify({ alg: 'RSA-OAEP', enc: 'A256GCM', kid }));
    return [jweHeader, b64u(crypto.randomBytes(256)), b64u(crypto.randomBytes(12)), b64u(JSON.stringify(claims)), b64u(crypto.randomBytes(16))].join('.');
  }
  let headerText = withRaw(header, spec.append_header);
  let payloadText = withRaw(claims, spec.append_payload);
  let encode = b64u;
  if (spec.encoding === 'padded') {
    // Make sure the header needs padding (its length not a multiple of 3), then keep it.
    if (Buffer.byteLength(headerText) % 3 === 0) headerText = `${headerText} `;
    encode = (buf) => Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
  }
  if (spec.encoding === 'standard') {
    // Make the payload's standard base64 hold a '+' or '/' (where base64url has '-' or '_').
    const std = (buf) => Buffer.from(buf).toString('base64').replace(/=+$/, '');
    for (let i = 0; !/[+/]/.test(std(payloadText)); i += 1) payloadText = withRaw({ ...claims, pad: '?'.repeat(i % 7 + 1) + '>'.repeat(i) }, spec.append_payload);
    encode = std;
  }
  const input = `${encode(headerText)}.${encode(payloadText)}`;
  return `${input}.${encode(signWith(alg, privateKey, input))}`;
}

// The defect queued for this grant, used up (one token response each).
function takeDefect(grantType) {
  if (!defect || (defect.grant && defect.grant !== grantType)) return null;
  const d = defect;
  defect = null;
  return d;
}

// ---------------------------------------------------------------- oidc-provider

const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')]; // shared so cookies survive a swap

const clients = ['basic', 'post'].map((kind) => ({
  client_id: `${kind}-client`,
  client_secret: `${kind}-secret`,
  token_endpoint_auth_method: `client_secret_${kind}`,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: REDIRECT_URIS,
  post_logout_redirect_uris: LOGOUT_URIS,
  require_auth_time: true, // puts auth_time into every ID token, as Cognito does
}));

let issuer; // known once the port is
let current; // { provider, handle } currently serving requests

function buildProvider() {
  const provider = new Provider(issuer, {
    adapter: SharedAdapter,
    clients,
    // Signing keys: the current one first. Older ones are marked verify-only so they can
    // never be picked for signing whatever oidc-provider's key ordering does.
    jwks: { keys: keys.map((k, i) => (i === 0 ? k : { ...k, key_ops: ['verify'] })) },
    cookies: { keys: COOKIE_KEYS },
    findAccount,
    // Cognito-shaped claims. All ID-token claims are put in the ID token itself
    // (conformIdTokenClaims: false), not only in userinfo.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub', 'token_use', 'cognito:username', 'cognito:groups', 'username', 'groups', 'preferred_username'],
      email: ['email', 'email_verified'],
      phone: ['phone_number', 'phone_number_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'updated_at'],
    },
    scopes: ['openid', 'email', 'phone', 'profile', 'aws.cognito.signin.user.admin'],
    responseTypes: ['code'],
    pkce: { required: () => true }, // oidc-provider 9 only knows S256
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'], // what Cognito offers
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    // Cognito always issues a refresh token on the code grant (no offline_access needed),
    // does not rotate it, and it outlives the hosted-UI session.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => rotateRefresh,
    expiresWithSession: async () => false,
    // One grant per sign-in, as each Cognito sign-in starts its own refresh-token family:
    // revoking (or replaying a code of) one login must not kill another login's tokens.
    // oidc-provider would otherwise reuse the browser session's grant for the client.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      IdToken: ID_TOKEN_TTL,
      AuthorizationCode: 300, // Cognito: 5 minutes
      RefreshToken: 30 * 24 * 3600, // Cognito's default
      Grant: 30 * 24 * 3600,
      Session: 3600, // Cognito's hosted-UI cookie lasts 1 hour
      Interaction: 3600,
    },
    routes: {
      authorization: '/oauth2/authorize',
      token: '/oauth2/token',
      userinfo: '/oauth2/userInfo',
      revocation: '/oauth2/revoke',
      jwks: '/.well-known/jwks.json', // answered below from `keys`, so keys can be hidden
      end_session: '/oidc/logout', // the standard one; Cognito's /logout is handled below
    },
    interactions: { url: (_ctx, interaction) => `${MOUNT}/login/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false }, // our own login page below
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: { enabled: false }, // access tokens stay opaque, usable at userInfo
    },
    renderError: async (ctx, out) => {
      ctx.type = 'text';
      ctx.body = `${out.error}: ${out.error_description ?? ''}\n`;
    },
  });

  provider.on('server_error', (_ctx, err) => log('server_error', err));

  // Cognito puts at_hash in ID tokens from the token endpoint too; oidc-provider only does so
  // for implicit/hybrid responses. An opaque access token's value is its jti; IdToken hashes
  // at_hash (left half of SHA-256, base64url) itself when signing.
  const { issue } = provider.IdToken.prototype;
  provider.IdToken.prototype.issue = function issueWithAtHash(options) {
    const at = this.ctx?.oidc?.entities?.AccessToken;
    if (options?.use === 'idtoken' && at?.jti && this.extra.at_hash === undefined) this.set('at_hash', at.jti);
    return issue.call(this, options);
  };

  // Runs before oidc-provider's own routing; ctx.path is relative to /<pool>.
  provider.use(async (ctx, next) => {
    if ((legacyDiscovery || args['advertise-algs']) && ctx.path === '/.well-known/openid-configuration') {
      await next();
      if (ctx.body && typeof ctx.body === 'object') {
        if (legacyDiscovery) {
          delete ctx.body.revocation_endpoint;
          delete ctx.body.end_session_endpoint;
        }
        if (args['advertise-algs']) ctx.body.id_token_signing_alg_values_supported = args['advertise-algs'].split(',');
      }
      return undefined;
    }
    if (MOTO && ctx.path === '/oauth2/authorize') await dropStaleLogin(ctx, provider);
    const login = ctx.path.match(/^\/login\/([\w-]+)$/);
    if (login) return loginPage(ctx, provider, login[1]);
    if (ctx.path === '/logout') return cognitoLogout(ctx, provider);
    if (ctx.path === '/.well-known/jwks.json' && ctx.method === 'GET') {
      ctx.body = servedJwks();
      return undefined;
    }
    if (ctx.path === '/oauth2/userInfo') stats.userinfo_requests += 1;
    if (ctx.path === '/oauth2/revoke' && ctx.method === 'POST') stats.revocations += 1;
    const isToken = ctx.path === '/oauth2/token' && ctx.method === 'POST';
    if (isToken) stats.token_requests += 1;
    if (isToken && tokenOutage) {
      ctx.status = tokenOutage;
      ctx.body = {
        429: { error: 'TooManyRequestsException', error_description: 'Rate exceeded' },
        401: { error: 'invalid_client', error_description: 'Client authentication failed' },
      }[tokenOutage] ?? 'Service Unavailable';
      return undefined;
    }

    await next();

    if (!isToken) return undefined;
    // The grant is done (tokens issued) before the wait, as when the answer is slow to travel.
    if (tokenDelayMs) await new Promise((resolve) => setTimeout(resolve, tokenDelayMs));
    const grantType = ctx.oidc?.body?.grant_type;
    const queued = ctx.status === 200 && ctx.body?.id_token ? takeDefect(grantType) : null;
    if (queued) {
      const target = queued.target ?? 'id_token';
      try {
        ctx.body[target] = forge(ctx.body.id_token, queued);
      } catch (err) {
        log('cannot forge the token asked for:', err);
      }
      // Changes to the token response itself (null removes a member), e.g. no token_type.
      merge(ctx.body, queued.response);
    }
    if (grantType === 'authorization_code') stats.authorization_code_grants += 1;
    if (grantType === 'refresh_token') {
      stats.refresh_grants += 1;
      if (ctx.status >= 400) stats.refresh_failures += 1;
      // oidc-provider echoes the unrotated refresh token back; Cognito sends none (unless
      // rotation is on: then the new one).
      if (!rotateRefresh && ctx.body && typeof ctx.body === 'object') delete ctx.body.refresh_token;
    }
    return undefined;
  });

  return { provider, handle: provider.callback() };
}

// ---------------------------------------------------------------- login page (interactions)

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(ctx, action, { username = '', error } = {}) {
  ctx.status = 200;
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in to ${escapeHtml(POOL)}</h1>
${error ? `<p class="error" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
  <label>Username <input type="text" name="username" value="${escapeHtml(username)}" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit" name="signIn">Sign in</button>
</form>
</body></html>
`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Consent is never shown: a fresh grant (see loadExistingGrant) with the requested scopes.
async function grantAll(provider, details, accountId) {
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  return grant.save();
}

async function loginPage(ctx, provider, uid) {
  ctx.set('Cache-Control', 'no-store');
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'text';
    ctx.body = `login session not found or expired (${err.message}); start again at the authorize endpoint\n`;
    return;
  }
  if (details.uid !== uid) {
    ctx.status = 400;
    ctx.type = 'text';
    ctx.body = 'login session does not match this page\n';
    return;
  }
  const action = `${MOUNT}/login/${uid}`; // absolute path: works whatever the client's base URL handling
  const finish = async (result) => {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  // Already signed in (hosted-UI session), only consent missing: grant it silently, so a
  // signed-in browser goes straight back to the client (one extra redirect through here).
  if (details.prompt.name === 'consent') {
    const accountId = details.session.accountId;
    return finish({ consent: { grantId: await grantAll(provider, details, accountId) } });
  }

  if (ctx.method === 'GET') {
    const session = MOTO ? await provider.Session.get(ctx) : null;
    const refusal = session && staleLogins.get(session.jti);
    if (refusal) staleLogins.delete(session.jti);
    return loginForm(ctx, action, { error: refusal });
  }
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    return undefined;
  }

  const form = await readForm(ctx.req);
  const username = form.get('username') ?? '';
  if (MOTO) return motoLogin(ctx, provider, details, action, form, finish);
  const user = users.get(username);
  if (!user || form.get('password') !== PASSWORD) {
    return loginForm(ctx, action, { username, error: 'Incorrect username or password.' });
  }
  if (!user.enabled) return loginForm(ctx, action, { username, error: 'User is disabled.' });

  const grantId = await grantAll(provider, details, user.sub);
  return finish({ login: { accountId: user.sub }, consent: { grantId } });
}

// Sign-in against moto's pool: the password checked there; a temporary one must be replaced
// first (NEW_PASSWORD_REQUIRED, as the hosted UI asks), in a second form.
async function motoLogin(ctx, provider, details, action, form, finish) {
  const username = form.get('username') ?? '';
  const challenge = form.get('session');
  const outcome = challenge
    ? await MOTO.setNewPassword(username, challenge, form.get('new_password') ?? '')
    : await MOTO.signIn(username, form.get('password') ?? '');
  if (outcome.newPasswordSession) return newPasswordForm(ctx, action, username, outcome.newPasswordSession);
  if (outcome.error) {
    if (challenge) return newPasswordForm(ctx, action, username, challenge, outcome.error);
    return loginForm(ctx, action, { username, error: outcome.error });
  }
  const grantId = await grantAll(provider, details, outcome.user.sub);
  return finish({ login: { accountId: outcome.user.sub }, consent: { grantId } });
}

function newPasswordForm(ctx, action, username, session, error) {
  ctx.status = 200;
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Change password</title></head>
<body>
<h1>Change your password</h1>
${error ? `<p class="error" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
  <input type="hidden" name="username" value="${escapeHtml(username)}">
  <input type="hidden" name="session" value="${escapeHtml(session)}">
  <label>New password <input type="password" name="new_password" autofocus></label>
  <button type="submit" name="changePassword">Change password</button>
</form>
</body></html>
`;
}

// Hosted-UI sessions (by id) whose moto user was disabled or deleted since they signed in:
// what the login form says to them once.
const staleLogins = new Map();

// Before an authorization (moto): a hosted-UI session whose user was disabled or deleted in
// the pool since is signed out, as Cognito refuses such a user at authorize, and the login
// form then says why. (oidc-provider itself fails on a session whose account is gone.)
async function dropStaleLogin(ctx, provider) {
  const session = await provider.Session.get(ctx);
  if (!session.accountId) return;
  const user = await MOTO.bySub(session.accountId);
  if (user?.enabled) return;
  staleLogins.set(session.jti, user ? 'User is disabled.' : 'User does not exist.');
  session.accountId = undefined;
  session.loginTs = undefined;
  session.authorizations = undefined;
  await session.persist();
}

// ---------------------------------------------------------------- Cognito-style /logout

async function cognitoLogout(ctx, provider) {
  stats.logouts += 1;
  ctx.set('Cache-Control', 'no-store');
  const clientId = typeof ctx.query.client_id === 'string' ? ctx.query.client_id : '';
  const logoutUri = typeof ctx.query.logout_uri === 'string' ? ctx.query.logout_uri : '';
  const client = clientId ? await provider.Client.find(clientId) : undefined;
  if (ctx.method !== 'GET' || !client || !LOGOUT_URIS.includes(logoutUri)) {
    ctx.status = 400;
    ctx.type = 'text';
    ctx.body = !client ? 'invalid_request: unknown client_id\n' : 'invalid_request: logout_uri is not an allowed sign-out URL\n';
    return;
  }
  // End the browser session so the next authorize shows the login form again.
  // Refresh tokens are not revoked (they were issued with expiresWithSession = false).
  const session = await provider.Session.get(ctx);
  await session.destroy();
  ctx.cookies.set(provider.cookieName('session'), null);
  ctx.redirect(logoutUri); // 302
}

// ---------------------------------------------------------------- test control API

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

async function control(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  if (route === 'GET /__test/stats') return json(res, 200, stats);
  if (route === 'POST /__test/reset-stats') {
    stats = zeroStats();
    return json(res, 200, stats);
  }
  if (route === 'POST /__test/reset-users') {
    users = initialUsers();
    return json(res, 200, { ok: true });
  }
  if (route === 'POST /__test/rotate-keys') {
    const dropOld = ['1', 'true'].includes(url.searchParams.get('drop_old'));
    if (dropOld) withdrawnKeys = [...keys, ...withdrawnKeys];
    keys = [newSigningKey(), ...(dropOld ? [] : keys)];
    current = buildProvider(); // new keystore; state lives in the shared adapter
    return json(res, 200, { kid: keys[0].kid, kids: keys.map((k) => k.kid) });
  }
  if (route === 'POST /__test/defect') {
    // The next token response (of `grant`, if given) carries a token with this defect.
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    try {
      defect = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
    } catch {
      return json(res, 400, { error: 'body must be a JSON defect (see README.md)' });
    }
    return json(res, 200, { queued: defect });
  }
  if (route === 'POST /__test/hide-signing-key' || route === 'POST /__test/show-signing-key') {
    signingKeyHidden = route.endsWith('hide-signing-key');
    return json(res, 200, { hidden: signingKeyHidden, kid: keys[0].kid });
  }
  if (route === 'POST /__test/legacy-discovery') {
    legacyDiscovery = ['1', 'true'].includes(url.searchParams.get('on'));
    return json(res, 200, { legacy: legacyDiscovery });
  }
  if (route === 'POST /__test/rotate-refresh') {
    rotateRefresh = ['1', 'true'].includes(url.searchParams.get('on'));
    return json(res, 200, { rotate: rotateRefresh });
  }
  if (route === 'POST /__test/token-delay') {
    tokenDelayMs = Number(url.searchParams.get('ms') ?? 0) || 0;
    return json(res, 200, { ms: tokenDelayMs });
  }
  if (route === 'POST /__test/token-outage') {
    tokenOutage = Number(url.searchParams.get('status') ?? 0) || 0;
    return json(res, 200, { status: tokenOutage });
  }
  const userRoute = url.pathname.match(/^\/__test\/users\/([^/]+)\/(groups|disable|enable|delete)$/);
  if (userRoute && req.method === 'POST') {
    const [, name, action] = userRoute;
    const user = users.get(decodeURIComponent(name));
    if (!user) return json(res, 404, { error: `unknown user ${name}` });
    if (action === 'groups') {
      let groups;
      try {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        groups = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        groups = null;
      }
      if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
        return json(res, 400, { error: 'body must be a JSON array of group names' });
      }
      user.groups = groups;
    } else if (action === 'delete') {
      users.delete(decodeURIComponent(name));
      return json(res, 200, { deleted: name });
    } else {
      user.enabled = action === 'enable';
    }
    return json(res, 200, { username: name, ...user });
  }
  return json(res, 404, { error: `no such control route: ${route}` });
}

// ---------------------------------------------------------------- HTTP server

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname.startsWith('/__test/')) {
    control(req, res, url).catch((err) => {
      log('control error', err);
      if (!res.headersSent) json(res, 500, { error: String(err) });
    });
    return;
  }
  if (url.pathname === MOUNT || url.pathname.startsWith(`${MOUNT}/`)) {
    // Mount the provider under /<pool> the way express/koa-mount do: oidc-provider derives
    // the mount path from req.originalUrl minus req.url when it builds its own URLs.
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
    current.handle(req, res);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}${MOUNT}`;
  keys = [newSigningKey()];
  current = buildProvider();
  // The one and only stdout line; stdout to a pipe is synchronous on Linux, so it is flushed.
  process.stdout.write(`${JSON.stringify({ port, issuer })}\n`);
  log(`listening, issuer ${issuer}`);
});

function shutdown(signal) {
  log(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections(); // keep-alive clients must not hold the exit
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// If the test process that started us dies without killing us (abort, SIGKILL), we get
// re-parented: exit then instead of lingering on the machine.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) shutdown('parent gone'); }, 1000).unref();
