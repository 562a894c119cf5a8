// Many distinct, valid ID tokens of the test provider, for bench/run.sh's bearer rows
// ("first sight": every token is new to the gateway, so its signature is checked).
//
//     node bench/mint_tokens.mjs GENUINE_ID_TOKEN JWKS_URL COUNT > tokens.txt
//     node bench/mint_tokens.mjs --keys JWKS_URL
//
// Takes a genuine ID token of tests/support/idp.mjs (bench/id_token.py), finds the provider's
// private key for its `kid` among the test-only keys shipped in tests/support/keys/ (the one
// whose modulus the JWKS at JWKS_URL publishes under that kid), and signs COUNT copies of its
// claims, each with its own `jti`: what the gateway sees is COUNT different tokens by the same
// user, each with a valid RS256 signature. Test keys only; loopback only.
// With --keys it prints "KID PEM_FILE" for each RSA key the JWKS publishes that is one of those
// files (Apache's bearer rows make a certificate of each for OIDCOAuthVerifyCertFiles).
import crypto from 'node:crypto';
import fs from 'node:fs';

const keyDir = new URL('../tests/support/keys/', import.meta.url);
const ours = fs.readdirSync(keyDir).filter((f) => f.endsWith('.pem')).map((f) => {
  const file = new URL(f, keyDir);
  const key = crypto.createPrivateKey(fs.readFileSync(file));
  return { path: file.pathname, key, n: key.export({ format: 'jwk' }).n };
});
const published = async (url) => (await (await fetch(url)).json()).keys.filter((k) => k.kty === 'RSA');

if (process.argv[2] === '--keys') {
  for (const k of await published(process.argv[3])) {
    const mine = ours.find((o) => o.n === k.n);
    if (mine) process.stdout.write(`${k.kid} ${mine.path}\n`);
  }
  process.exit(0);
}

const [genuine, jwksUrl, countText] = process.argv.slice(2);
const count = Number(countText);
const [h, p] = genuine.split('.');
const header = JSON.parse(Buffer.from(h, 'base64url'));
const claims = JSON.parse(Buffer.from(p, 'base64url'));
const jwk = (await published(jwksUrl)).find((k) => k.kid === header.kid);
if (!jwk) throw new Error(`kid ${header.kid} is not in ${jwksUrl}`);
const pem = ours.find((o) => o.n === jwk.n)?.key;
if (!pem) throw new Error('the signing key is not one of tests/support/keys/*.pem');
const head = Buffer.from(JSON.stringify(header)).toString('base64url');
const lines = [];
for (let i = 0; i < count; i += 1) {
  const body = Buffer.from(JSON.stringify({ ...claims, jti: `bench-${i}-${crypto.randomBytes(6).toString('hex')}` }))
    .toString('base64url');
  const input = `${head}.${body}`;
  lines.push(`${input}.${crypto.sign('sha256', Buffer.from(input), pem).toString('base64url')}`);
}
process.stdout.write(`${lines.join('\n')}\n`);
