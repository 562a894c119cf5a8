// Many distinct, valid ID tokens of the test provider, for bench/run.sh's bearer rows
// ("first sight": every token is new to the gateway, so its signature is checked).
//
//     node bench/mint_tokens.mjs GENUINE_ID_TOKEN JWKS_URL COUNT > tokens.txt
//
// Takes a genuine ID token of tests/support/idp.mjs (bench/id_token.py), finds the provider's
// private key for its `kid` among the test-only keys shipped in tests/support/keys/ (the one
// whose modulus the JWKS at JWKS_URL publishes under that kid), and signs COUNT copies of its
// claims, each with its own `jti`: what the gateway sees is COUNT different tokens by the same
// user, each with a valid RS256 signature. Test keys only; loopback only.
import crypto from 'node:crypto';
import fs from 'node:fs';

const [genuine, jwksUrl, countText] = process.argv.slice(2);
const count = Number(countText);
const [h, p] = genuine.split('.');
const header = JSON.parse(Buffer.from(h, 'base64url'));
const claims = JSON.parse(Buffer.from(p, 'base64url'));
const jwks = await (await fetch(jwksUrl)).json();
const published = jwks.keys.find((k) => k.kid === header.kid);
if (!published) throw new Error(`kid ${header.kid} is not in ${jwksUrl}`);
const keyDir = new URL('../tests/support/keys/', import.meta.url);
const pem = fs.readdirSync(keyDir).filter((f) => f.endsWith('.pem'))
  .map((f) => crypto.createPrivateKey(fs.readFileSync(new URL(f, keyDir))))
  .find((k) => k.export({ format: 'jwk' }).n === published.n);
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
