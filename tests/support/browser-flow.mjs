// End-to-end sign-in and sign-out through ssogate in a real browser (Debian's headless
// Chromium driven by playwright-core; never a downloaded browser).
//
//   node tests/support/browser-flow.mjs <gateway base URL> [screenshot dir]
//
// The gateway must protect `/` with the echo upstream behind it (tests/common/mod.rs) and sign
// in at the test identity provider (tests/support/idp.mjs) as the user alice. Prints one JSON
// line per step to stdout; exits 0 when every step passed, 1 with a message on stderr (and a
// screenshot `failure.png` in the screenshot dir) at the first failure. With a screenshot dir,
// each step also leaves `<nn>-<step>.png` there. Exits within 60 s whatever happens.
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const NAV_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 55_000; // leaves time to close the browser before 60 s
const SESSION_COOKIE = '_ssogate';
const USER = 'alice';
const PASSWORD = 'Passw0rd!';

const base = (process.argv[2] || '').replace(/\/+$/, '');
const shotDir = process.argv[3] || '';
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node browser-flow.mjs <gateway base URL, e.g. http://127.0.0.1:8080> [screenshot dir]');
  process.exit(2);
}
const baseOrigin = new URL(base).origin;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

let browser;
let page;
let step = 'start';
let stepNo = 0;
let finished = false;
let userDataDir;

function log(obj) {
  process.stdout.write(JSON.stringify({ step, ...obj }) + '\n');
}

class StepFailure extends Error {}

function check(cond, message) {
  if (!cond) throw new StepFailure(message);
}

async function screenshot(name) {
  if (!shotDir || !page) return null;
  try {
    mkdirSync(shotDir, { recursive: true });
    const path = join(shotDir, `${name}.png`);
    await page.screenshot({ path, fullPage: true, timeout: 5_000 });
    return path;
  } catch {
    return null;
  }
}

async function cleanup() {
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
  }
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}

async function fail(message) {
  if (finished) return;
  finished = true;
  const shot = await screenshot('failure');
  const url = page ? page.url() : null;
  log({ ok: false, error: message, url, screenshot: shot });
  console.error(`browser-flow: step "${step}" failed: ${message}${url ? ` (page at ${url})` : ''}${shot ? `; screenshot ${shot}` : ''}`);
  await cleanup();
  process.exit(1);
}

// Whatever hangs, the script ends in time.
setTimeout(() => {
  fail(`the whole flow took longer than ${TOTAL_TIMEOUT_MS / 1000} s`);
  setTimeout(() => process.exit(1), 4_000).unref();
}, TOTAL_TIMEOUT_MS).unref();

/// Runs one step: logs its outcome as a JSON line, and a screenshot when asked.
async function run(name, fn) {
  step = name;
  stepNo += 1;
  const t0 = Date.now();
  const detail = (await fn()) || {};
  const shot = await screenshot(`${String(stepNo).padStart(2, '0')}-${name}`);
  log({ ok: true, ms: Date.now() - t0, url: page.url(), ...detail, ...(shot ? { screenshot: shot } : {}) });
}

/// The URLs of a navigation's redirect chain, first to last.
function chain(response) {
  const urls = [];
  for (let req = response.request(); req; req = req.redirectedFrom()) urls.unshift(req.url());
  return urls;
}

/// Checks that the page is the identity provider's login form (not a gateway page, not the app).
async function expectLoginForm() {
  const url = new URL(page.url());
  check(url.origin !== baseOrigin, `expected the provider's login page, but the page is at the gateway: ${page.url()}`);
  check(/\/login\//.test(url.pathname), `expected the provider's /login/<uid> page, got ${page.url()}`);
  const user = await page.locator('input[name="username"]').count();
  const pass = await page.locator('input[name="password"]').count();
  check(user === 1 && pass === 1, `the login page has ${user} username and ${pass} password inputs (want 1 and 1)`);
}

async function sessionCookies() {
  return (await page.context().cookies(base)).filter((c) => c.name.startsWith(SESSION_COOKIE));
}

async function main() {
  check(existsSync(executablePath), `no Chromium at ${executablePath} (run scripts/test, which installs Debian's chromium)`);
  userDataDir = mkdtempSync(join(tmpdir(), 'ssogate-chromium-'));
  await run('launch', async () => {
    // launchPersistentContext: the only way to hand Chromium a --user-data-dir of our own.
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      timeout: NAV_TIMEOUT_MS,
      args: [
        '--no-sandbox', // root in a container
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    browser = context;
    context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
    context.setDefaultTimeout(NAV_TIMEOUT_MS);
    page = context.pages()[0] || (await context.newPage());
    // A cookie of the application's own: it must still reach the upstream.
    await context.addCookies([{ name: 'app_pref', value: 'dark', url: base }]);
    return { user_agent: await page.evaluate(() => navigator.userAgent) };
  });

  const protectedUrl = `${base}/hello?x=1`;
  await run('open-protected', async () => {
    const resp = await page.goto(protectedUrl);
    check(resp, `no response for ${protectedUrl}`);
    check(resp.status() === 200, `the login page answered ${resp.status()}`);
    await expectLoginForm();
    return { redirects: chain(resp) };
  });

  let echo;
  await run('sign-in', async () => {
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', PASSWORD);
    const landed = page.waitForResponse(
      (r) => r.url() === protectedUrl && r.request().isNavigationRequest() && r.request().frame() === page.mainFrame(),
      { timeout: NAV_TIMEOUT_MS },
    );
    await Promise.all([landed.catch(() => null), page.locator('input[name="password"]').press('Enter')]);
    const resp = await landed.catch(async (e) => {
      throw new StepFailure(`did not come back to ${protectedUrl} after signing in (${e.message.split('\n')[0]}); page at ${page.url()}: ${(await page.locator('body').innerText().catch(() => '')).slice(0, 300)}`);
    });
    await page.waitForLoadState('load');
    check(page.url() === protectedUrl, `after signing in the page is at ${page.url()}, not ${protectedUrl}`);
    check(resp.status() === 200, `${protectedUrl} answered ${resp.status()}`);
    check(resp.headers()['x-upstream'] === 'echo', `${protectedUrl} was not answered by the echo upstream`);
    const body = await resp.text();
    try {
      echo = JSON.parse(body);
    } catch {
      throw new StepFailure(`the page is not the echo's JSON: ${body.slice(0, 300)}`);
    }
    const shown = await page.locator('body').innerText();
    check(shown.includes('"x-forwarded-user"'), `the browser does not show the echo's JSON: ${shown.slice(0, 300)}`);
    return { redirects: chain(resp) };
  });

  await run('identity-headers', async () => {
    const h = echo.headers || {};
    check(echo.path === '/hello?x=1', `the upstream saw path ${JSON.stringify(echo.path)}, want "/hello?x=1"`);
    check(h['x-forwarded-user'] === USER, `x-forwarded-user is ${JSON.stringify(h['x-forwarded-user'])}, want "${USER}"`);
    check(h['x-forwarded-groups'] === 'admins,staff', `x-forwarded-groups is ${JSON.stringify(h['x-forwarded-groups'])}, want "admins,staff"`);
    const cookie = h.cookie || '';
    check(!cookie.includes(SESSION_COOKIE), `the upstream saw the gateway's cookies: cookie: ${cookie}`);
    check(/(^|;\s*)app_pref=dark(;|$)/.test(cookie), `the application's own cookie did not reach the upstream: cookie: ${JSON.stringify(cookie)}`);
    return { user: h['x-forwarded-user'], groups: h['x-forwarded-groups'], upstream_cookie: cookie };
  });

  await run('session-cookie', async () => {
    const all = await page.context().cookies(base);
    const c = all.find((x) => x.name === SESSION_COOKIE);
    check(c, `no ${SESSION_COOKIE} cookie in the browser; cookies: ${all.map((x) => x.name).join(', ') || '(none)'}`);
    check(c.httpOnly === true, `${SESSION_COOKIE} is not HttpOnly`);
    check(c.sameSite === 'Lax', `${SESSION_COOKIE} has SameSite=${c.sameSite}, want Lax`);
    check(c.path === '/', `${SESSION_COOKIE} has Path=${c.path}, want /`);
    const leftovers = all.filter((x) => x.name.startsWith(`${SESSION_COOKIE}_state_`)).map((x) => x.name);
    check(leftovers.length === 0, `sign-in state cookies left after the callback: ${leftovers.join(', ')}`);
    return { cookie: { name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path, secure: c.secure, expires: c.expires } };
  });

  await run('sign-out', async () => {
    const resp = await page.goto(`${base}/oauth2/sign_out`);
    check(resp, 'no response for the sign-out');
    const urls = chain(resp);
    const logout = urls.find((u) => new URL(u).origin !== baseOrigin && new URL(u).pathname.endsWith('/logout'));
    check(logout, `sign-out did not go through the provider's /logout: ${urls.join(' -> ')}`);
    check(page.url() === `${base}/oauth2/signed_out`, `sign-out ended at ${page.url()}, not ${base}/oauth2/signed_out (${urls.join(' -> ')})`);
    check(resp.status() === 200, `the signed-out page answered ${resp.status()}`);
    const text = await page.locator('body').innerText();
    check(/signed out/i.test(text), `the signed-out page does not say "signed out": ${text.slice(0, 300)}`);
    return { redirects: urls };
  });

  await run('session-cookie-gone', async () => {
    const left = await sessionCookies();
    check(left.length === 0, `cookies left after signing out: ${left.map((c) => `${c.name} (path ${c.path})`).join(', ')}`);
    return {};
  });

  await run('signed-out-for-real', async () => {
    const resp = await page.goto(`${base}/hello`);
    check(resp, `no response for ${base}/hello`);
    check(resp.headers()['x-upstream'] !== 'echo', `${base}/hello still reaches the application after signing out`);
    await expectLoginForm();
    return { redirects: chain(resp) };
  });

  step = 'done';
  finished = true;
  log({ ok: true });
  await cleanup();
  process.exit(0);
}

main().catch((e) => fail(e instanceof StepFailure ? e.message : (e && e.stack) || String(e)));
