// Browser tests of the login pages: headless Chromium (Debian `chromium`) driven by
// playwright-core, axe-core audits inside the page, and a relying party built on openid-client
// (a tiny HTTP server here: it starts the login, receives the callback, exchanges the code and
// verifies the ID token's signature with the provider's JWKS, nonce, state and iss).
//
// Run by tests/ui_browser.rs, which starts `oxidex serve` and passes, in the environment:
//   OXIDEX_UI_MODE          `flows` (default) or `device`
//   OXIDEX_UI_LIGHT         issuer of a server with frontend.theme: light
//   OXIDEX_UI_DARK          issuer of a server with frontend.theme: dark (flows mode)
//   OXIDEX_UI_AUTO          issuer of a server with frontend.theme: auto, colors.primary #7c2d12,
//                           a customCSS making the brand upper case, and an SVG favicon
//   OXIDEX_UI_RP_PORT       the port of this script's RP (the client's redirect URI is
//                           http://127.0.0.1:PORT/callback, its logo http://127.0.0.1:PORT/logo.svg)
//   OXIDEX_UI_CLIENT_ID, OXIDEX_UI_CLIENT_SECRET, OXIDEX_UI_OOB_CLIENT_ID
//   OXIDEX_UI_USERNAME, OXIDEX_UI_PASSWORD, OXIDEX_UI_EXPECTED_SUB
//   OXIDEX_UI_SCREENSHOTS   directory for the screenshots (created)
//   OXIDEX_UI_USER_CODE     (device mode) the user code to enter
//   OXIDEX_UI_CHROMIUM      the browser binary (default /usr/bin/chromium)
// Prints one JSON summary line (with the measurements) and exits 0, or exits 1 with a message.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

class Failure extends Error {}
function fail(message) {
  throw new Failure(message);
}
function check(condition, message) {
  if (!condition) fail(message);
}
function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') fail(`the environment variable ${name} is not set`);
  return value;
}

const MODE = process.env.OXIDEX_UI_MODE || 'flows';
const SHOTS = env('OXIDEX_UI_SCREENSHOTS');
fs.mkdirSync(SHOTS, { recursive: true });
const USERNAME = env('OXIDEX_UI_USERNAME');
const PASSWORD = env('OXIDEX_UI_PASSWORD');
const screenshots = [];
const audits = [];

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

/** axe-core inside the page (evaluated through the DevTools protocol, so the page's CSP stays
 * as it is); fails on any serious or critical violation. */
async function audit(page, name) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  audits.push({ page: name, violations: result.length, serious_or_critical: bad.length });
  check(bad.length === 0, `axe on ${name}: ${JSON.stringify(bad, null, 2)}`);
}

/** Waits until the WASM app has rendered the page (it sets data-app="rendered" on <html>). */
async function appRendered(page, what) {
  try {
    await page.waitForFunction(() => document.documentElement.dataset.app === 'rendered', null, { timeout: 15000 });
  } catch {
    fail(`${what}: the WASM app did not render (the no-JS page stayed):\n${await page.content()}`);
  }
}

async function heading(page) {
  return (await page.locator('h1').first().textContent())?.trim();
}

/** How many steps the app has rendered in place (`<html data-step>`). */
async function stepCount(page) {
  return page.evaluate(() => Number(document.documentElement.dataset.step || 0));
}

/** Waits until the app rendered a step in place after `before` (see stepCount). */
async function stepRendered(page, before, what) {
  try {
    await page.waitForFunction((n) => Number(document.documentElement.dataset.step || 0) > n, before, { timeout: 15000 });
  } catch {
    fail(`${what}: no step was rendered in place:\n${await page.content()}`);
  }
}

/** The Flow methods called over gRPC-web so far, checked for the gRPC-web content type. */
function grpcWebCalls(requests) {
  return requests
    .filter((r) => r.url.includes('/grpc-web/oxidex.v1.Flow/'))
    .map((r) => {
      check(/^application\/grpc-web/.test(r.type), `a gRPC-web call with content-type ${r.type}`);
      return r.url.split('/').pop();
    });
}

/** POSTs that loaded a page (form submissions). */
function formPosts(requests) {
  return requests.filter((r) => r.navigation).map((r) => new URL(r.url).pathname);
}

/** The relying party: /start begins a login (query: run, ui_locales), /callback completes it. */
async function startRp(port, issuers) {
  const clientId = env('OXIDEX_UI_CLIENT_ID');
  const clientSecret = env('OXIDEX_UI_CLIENT_SECRET');
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const configs = new Map();
  for (const issuer of issuers) {
    configs.set(
      issuer,
      await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
        execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      }),
    );
  }
  const pending = new Map();
  const results = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    try {
      if (url.pathname === '/logo.svg') {
        res.writeHead(200, { 'content-type': 'image/svg+xml' });
        res.end('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><rect width="48" height="48" rx="10" fill="#0f766e"/><path d="M14 25l7 7 13-15" stroke="#fff" stroke-width="5" fill="none"/></svg>');
        return;
      }
      if (url.pathname === '/start') {
        const issuer = url.searchParams.get('issuer');
        const config = configs.get(issuer);
        check(config, `unknown issuer ${issuer}`);
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const nonce = client.randomNonce();
        const params = {
          redirect_uri: redirectUri,
          scope: 'openid email profile groups offline_access',
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          nonce,
        };
        if (url.searchParams.get('ui_locales')) params.ui_locales = url.searchParams.get('ui_locales');
        pending.set(state, { issuer, verifier, nonce });
        res.writeHead(302, { location: client.buildAuthorizationUrl(config, params).href });
        res.end();
        return;
      }
      if (url.pathname === '/callback') {
        const p = pending.get(url.searchParams.get('state'));
        check(p, `callback with an unknown state: ${url.href}`);
        pending.delete(url.searchParams.get('state'));
        const tokens = await client.authorizationCodeGrant(configs.get(p.issuer), url, {
          pkceCodeVerifier: p.verifier,
          expectedNonce: p.nonce,
          expectedState: url.searchParams.get('state'),
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        results.push({ issuer: p.issuer, sub: claims.sub, email: claims.email });
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<!DOCTYPE html><html lang="en"><head><title>RP</title></head><body><main><h1 id="rp">Signed in</h1><p id="sub">${claims.sub}</p><p id="email">${claims.email}</p></main></body></html>`);
        return;
      }
      res.writeHead(404);
      res.end();
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`RP error: ${e?.stack ?? e}`);
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, results, base: `http://127.0.0.1:${port}` };
}

async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 800, height: 720 }, ...options });
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  page.on('request', (r) => {
    if (r.method() === 'POST') {
      requests.push({ url: r.url(), type: r.headers()['content-type'] ?? '', navigation: r.isNavigationRequest() });
    }
  });
  page.on('console', (m) => {
    const text = m.text();
    // A page answered 400/401 (an error page, a failed login) logs "Failed to load resource";
    // the assets are checked by status below instead.
    if (/Failed to load resource/.test(text)) return;
    if (m.type() === 'error' || /Content.Security.Policy|Refused to/i.test(text)) problems.push(text);
  });
  page.on('response', (r) => {
    if (r.url().includes('/static/') && r.status() !== 200) problems.push(`${r.url()}: ${r.status()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, problems, requests };
}

function noProblems(problems, what) {
  check(problems.length === 0, `${what}: console errors or CSP violations:\n${problems.join('\n')}`);
}

/** One login through the pages, mouse and keyboard as a user would. The app submits the
 * password and the consent over gRPC-web: no form is posted, a wrong password is shown
 * without a page load. */
async function login(browser, rp, { issuer, name, locale, uiLocales, expect, wrongPassword, screenshotsFor }) {
  const { context, page, problems, requests } = await newPage(browser, locale ? { locale } : {});
  const start = `${rp.base}/start?issuer=${encodeURIComponent(issuer)}${uiLocales ? `&ui_locales=${uiLocales}` : ''}`;
  await page.goto(start);

  // Chooser.
  await appRendered(page, `${name} chooser`);
  check((await page.getAttribute('html', 'lang')) === expect.lang, `${name}: <html lang> is not ${expect.lang}`);
  check((await heading(page)) === expect.loginTitle, `${name}: chooser heading ${await heading(page)}`);
  check((await page.locator('ul.ox-connectors svg.ox-icon').count()) >= 2, `${name}: the chooser has no connector icons`);
  if (expect.dark !== undefined) {
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    const dark = (r + g + b) / 3 < 80;
    check(dark === expect.dark, `${name}: body background ${bg} is not ${expect.dark ? 'dark' : 'light'}`);
  }
  if (screenshotsFor) {
    await shot(page, `${name}-chooser`);
    await audit(page, `${name} chooser`);
  }
  await page.locator('a[data-connector="local"]').click();

  // Password form.
  await page.waitForURL(/\/auth\/local/);
  await appRendered(page, `${name} password form`);
  check(
    (await page.locator('label[for="login"]').textContent()).trim() === expect.usernameLabel,
    `${name}: the username label is not the connector's prompt ${expect.usernameLabel}`,
  );
  if (screenshotsFor) {
    await shot(page, `${name}-login`);
    await audit(page, `${name} password form`);
  }
  if (wrongPassword) {
    await page.getByLabel(expect.usernameLabel).fill(USERNAME);
    await page.getByLabel(expect.passwordLabel).fill('wrong password');
    // A marker that survives only while the document does: no page load may happen.
    await page.evaluate(() => {
      window.oxidexSameDocument = true;
    });
    const before = await stepCount(page);
    const call = page.waitForRequest((r) => r.url().endsWith('/grpc-web/oxidex.v1.Flow/PasswordLogin'));
    await page.getByRole('button', { name: expect.loginTitle }).click();
    const sent = await call;
    check(/^application\/grpc-web/.test(sent.headers()['content-type']), `${name}: the login call is not gRPC-web`);
    await stepRendered(page, before, `${name} failed login`);
    check(await page.evaluate(() => window.oxidexSameDocument === true), `${name}: the wrong password loaded a new page`);
    const alert = page.getByRole('alert');
    check((await alert.textContent()).trim() === expect.invalid, `${name}: wrong password shows "${await alert.textContent()}"`);
    check((await page.locator('#login').inputValue()) === USERNAME, `${name}: the username is not kept after a failure`);
    check(
      (await page.evaluate(() => document.activeElement?.id)) === 'password',
      `${name}: after a failure the focus is not in the password field`,
    );
    await shot(page, `${name}-login-wrong-password`);
    await audit(page, `${name} failed login`);
  }
  await page.getByLabel(expect.usernameLabel).fill(USERNAME);
  await page.getByLabel(expect.passwordLabel).fill(PASSWORD);
  await page.getByRole('button', { name: expect.loginTitle }).click();

  // Consent.
  await page.waitForURL(/\/approval/);
  await appRendered(page, `${name} consent`);
  check((await heading(page)) === expect.consentTitle, `${name}: consent heading ${await heading(page)}`);
  const scopes = await page.locator('ul.ox-scopes li').allTextContents();
  check(scopes.includes(expect.emailScope), `${name}: the consent page does not explain the email scope: ${scopes}`);
  const logoLoaded = await page.locator('.ox-client img').evaluate((img) => img.complete && img.naturalWidth > 0);
  check(logoLoaded, `${name}: the client's logo did not load (CSP img-src?)`);
  if (screenshotsFor) {
    await shot(page, `${name}-consent`);
    await audit(page, `${name} consent`);
  }
  await page.getByRole('button', { name: expect.approve }).click();

  // Back at the RP with a verified ID token.
  await page.waitForURL(`${rp.base}/callback**`);
  const rpText = await page.locator('#rp').textContent().catch(async () => page.content());
  check(rpText === 'Signed in', `${name}: the RP did not complete the login: ${await page.content()}`);
  const calls = grpcWebCalls(requests);
  const logins = calls.filter((c) => c === 'PasswordLogin').length;
  check(logins === (wrongPassword ? 2 : 1), `${name}: PasswordLogin over gRPC-web ${logins} times: ${calls}`);
  check(calls.includes('Approve'), `${name}: the consent was not approved over gRPC-web: ${calls}`);
  check(formPosts(requests).length === 0, `${name}: forms were posted: ${formPosts(requests)}`);
  noProblems(problems, name);
  await context.close();
}

/** The keyboard alone: Tab to the connector, Enter; type, Tab, type, Enter; Enter on consent. */
async function keyboardLogin(browser, rp, issuer) {
  const { context, page, problems, requests } = await newPage(browser);
  await page.goto(`${rp.base}/start?issuer=${encodeURIComponent(issuer)}`);
  await appRendered(page, 'keyboard chooser');
  let found = false;
  for (let i = 0; i < 10 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.dataset?.connector === 'local');
  }
  check(found, 'keyboard: Tab never reached the password connector');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', 'keyboard: the focused connector link has no visible focus outline');
  await shot(page, 'keyboard-chooser-focus');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/auth\/local/);
  await appRendered(page, 'keyboard login');
  check((await page.evaluate(() => document.activeElement?.id)) === 'login', 'keyboard: the username field has no focus');
  await page.keyboard.type(USERNAME);
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement?.id)) === 'password', 'keyboard: Tab does not reach the password');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/approval/);
  await appRendered(page, 'keyboard consent');
  const focused = await page.evaluate(() => document.activeElement?.value);
  check(focused === 'approve', `keyboard: the consent page focuses ${focused}, not the approve button`);
  await page.keyboard.press('Enter');
  await page.waitForURL(`${rp.base}/callback**`);
  check((await page.locator('#rp').textContent()) === 'Signed in', 'keyboard: the RP did not complete the login');
  check(grpcWebCalls(requests).join() === 'PasswordLogin,Approve', `keyboard: calls ${grpcWebCalls(requests)}`);
  noProblems(problems, 'keyboard');
  await context.close();
}

/** JavaScript off: the server-rendered forms alone complete a login (wrong password included). */
async function withoutJavaScript(browser, rp, issuer) {
  const { context, page, problems, requests } = await newPage(browser, { javaScriptEnabled: false });
  await page.goto(`${rp.base}/start?issuer=${encodeURIComponent(issuer)}`);
  check((await heading(page)) === 'Log in', `no-JS: chooser heading ${await heading(page)}`);
  check((await page.getAttribute('html', 'data-app')) === null, 'no-JS: the app ran although JavaScript is off');
  await Promise.all([page.waitForURL(/\/auth\/local/), page.locator('a[href*="/auth/local?"]').click()]);
  await page.locator('#login').fill(USERNAME);
  await page.locator('#password').fill('wrong password');
  await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
  check((await page.getByRole('alert').textContent()).trim() === 'Invalid username or password.', 'no-JS: no error after a wrong password');
  check((await page.locator('#login').inputValue()) === USERNAME, 'no-JS: the username is not kept');
  await shot(page, 'no-js-login-wrong-password');
  await page.locator('#password').fill(PASSWORD);
  await Promise.all([page.waitForURL(/\/approval/), page.locator('button[type="submit"]').click()]);
  check((await heading(page)) === 'Grant access', `no-JS: consent heading ${await heading(page)}`);
  await page.locator('button[value="approve"]').click();
  await page.waitForURL(`${rp.base}/callback**`);
  check((await page.locator('#rp').textContent()) === 'Signed in', 'no-JS: the RP did not complete the login');
  check(grpcWebCalls(requests).length === 0, `no-JS: gRPC-web calls without JavaScript: ${grpcWebCalls(requests)}`);
  const posts = formPosts(requests);
  check(
    posts.filter((p) => p.endsWith('/auth/local/login')).length === 2 && posts.some((p) => p.endsWith('/approval')),
    `no-JS: the forms were not posted: ${posts}`,
  );
  noProblems(problems, 'no-JS');
  await context.close();
}

/** gRPC-web unreachable (the network, or a proxy that drops it): the app submits the same
 * forms instead, and the login completes as without JavaScript. */
async function grpcWebFallback(browser, rp, issuer) {
  const { context, page, problems, requests } = await newPage(browser);
  await context.route('**/grpc-web/**', (route) => route.abort());
  await page.goto(`${rp.base}/start?issuer=${encodeURIComponent(issuer)}`);
  await appRendered(page, 'fallback chooser');
  await page.locator('a[data-connector="local"]').click();
  await page.waitForURL(/\/auth\/local/);
  await appRendered(page, 'fallback login');
  await page.locator('#login').fill(USERNAME);
  await page.locator('#password').fill('wrong password');
  await Promise.all([page.waitForNavigation(), page.locator('button[type="submit"]').click()]);
  await appRendered(page, 'fallback failed login');
  check((await page.getByRole('alert').textContent()).trim() === 'Invalid username or password.', 'fallback: no error after a wrong password');
  await page.locator('#password').fill(PASSWORD);
  await Promise.all([page.waitForURL(/\/approval/), page.locator('button[type="submit"]').click()]);
  await appRendered(page, 'fallback consent');
  await page.locator('button[value="approve"]').click();
  await page.waitForURL(`${rp.base}/callback**`);
  check((await page.locator('#rp').textContent()) === 'Signed in', 'fallback: the RP did not complete the login');
  const calls = grpcWebCalls(requests);
  check(calls.join() === 'PasswordLogin,PasswordLogin,Approve', `fallback: gRPC-web attempts ${calls}`);
  const posts = formPosts(requests);
  check(
    posts.filter((p) => p.endsWith('/auth/local/login')).length === 2 && posts.some((p) => p.endsWith('/approval')),
    `fallback: the forms were not posted: ${posts}`,
  );
  noProblems(problems, 'fallback');
  await context.close();
}

/** The out-of-band page and an error page, audited. */
async function otherPages(browser, issuer, suffix, expect) {
  const { context, page, problems } = await newPage(browser, { locale: expect.locale });
  const oobClient = env('OXIDEX_UI_OOB_CLIENT_ID');
  const challenge = createHash('sha256').update('v'.repeat(43)).digest('base64url');
  await page.goto(
    `${issuer}/auth?client_id=${oobClient}&redirect_uri=urn:ietf:wg:oauth:2.0:oob&response_type=code&scope=openid` +
      `&state=s&code_challenge=${challenge}&code_challenge_method=S256`,
  );
  await appRendered(page, 'oob chooser');
  await page.locator('a[data-connector="local"]').click();
  await page.waitForURL(/\/auth\/local/);
  await appRendered(page, 'oob login');
  await page.locator('#login').fill(USERNAME);
  await page.locator('#password').fill(PASSWORD);
  await page.locator('button[type="submit"]').click();
  await page.waitForURL(/\/approval/);
  await appRendered(page, 'oob consent');
  // The code is the answer of the Approve call, shown in place.
  const before = await stepCount(page);
  await page.locator('button[value="approve"]').click();
  await stepRendered(page, before, 'oob code');
  const code = await page.locator('#code').inputValue();
  check(code.length > 10, `oob: no code on the page: ${await page.content()}`);
  await shot(page, `oob${suffix}`);
  await audit(page, `oob code${suffix}`);

  const res = await page.goto(`${issuer}/auth?client_id=no-such-client&redirect_uri=http://x.test/&response_type=code&scope=openid`);
  check(res.status() === 400, `error page status ${res.status()}`);
  await appRendered(page, 'error page');
  check((await heading(page)) === expect.unknownClient, `error page heading ${await heading(page)}`);
  check((await page.getByRole('alert').count()) === 1, 'the error page has no alert');
  await shot(page, `error${suffix}`);
  await audit(page, `error page${suffix}`);
  noProblems(problems, 'oob and error pages');
  await context.close();
}

/** Transfer size (compressed, as sent over the wire, headers included) and render times of a
 * cold load of the login page (browser cache disabled), median of 7 loads. */
async function measure(browser, rp, issuer) {
  const runs = [];
  for (let i = 0; i < 7; i++) {
    const { context, page } = await newPage(browser);
    // A fresh flow: the chooser sets the cookies and links the login page.
    await page.goto(`${rp.base}/start?issuer=${encodeURIComponent(issuer)}`);
    await appRendered(page, 'measure chooser');
    const href = await page.locator('a[data-connector="local"]').evaluate((a) => a.href);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    const bytes = new Map();
    const urls = new Map();
    cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
    cdp.on('Network.loadingFinished', (e) => bytes.set(e.requestId, e.encodedDataLength));
    await page.goto(href);
    await appRendered(page, 'measure login');
    await page.waitForLoadState('networkidle');
    const timing = await page.evaluate(() => {
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      return { app_ms: Number(document.documentElement.dataset.appMs), fcp_ms: fcp ? fcp.startTime : 0 };
    });
    const files = [...bytes.entries()].map(([id, n]) => ({ url: urls.get(id), bytes: n }));
    runs.push({ total: files.reduce((a, f) => a + f.bytes, 0), files, ...timing });
    await context.close();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    total_bytes: median(runs.map((r) => r.total)),
    files: runs[0].files.map((f) => ({ name: new URL(f.url).pathname.split('/').pop() || f.url, bytes: f.bytes })),
    app_render_ms: median(runs.map((r) => r.app_ms)),
    first_contentful_paint_ms: median(runs.map((r) => r.fcp_ms)),
    runs: runs.length,
  };
}

/** Login throttling: after repeated failures the page says how long to wait, counts down (the
 * submit button disabled meanwhile), and then lets the user try again. */
async function throttling(browser, rp, issuer) {
  const { context, page, problems } = await newPage(browser);
  await page.goto(`${rp.base}/start?issuer=${encodeURIComponent(issuer)}`);
  await appRendered(page, 'throttle chooser');
  await page.locator('a[data-connector="local"]').click();
  await page.waitForURL(/\/auth\/local/);
  let text = '';
  await appRendered(page, 'throttle login');
  for (let i = 0; i < 12 && !text.startsWith('Too many attempts'); i++) {
    // Wait out a running countdown before the next attempt.
    await page.waitForFunction(() => !document.querySelector('button[type="submit"]').disabled, null, { timeout: 60000 });
    await page.locator('#login').fill('nobody@example.com');
    await page.locator('#password').fill(`wrong ${i}`);
    const before = await stepCount(page);
    await page.locator('button[type="submit"]').click();
    await stepRendered(page, before, 'throttle login');
    text = (await page.getByRole('alert').textContent()).trim();
  }
  check(/^Too many attempts\. Please try again in \d+ s\.$/.test(text), `no throttling message after repeated failures: ${text}`);
  check(await page.locator('button[type="submit"]').isDisabled(), 'the submit button is enabled while throttled');
  await shot(page, 'login-throttled');
  await audit(page, 'throttled login');
  await page.waitForFunction(
    () => document.querySelector('[role="alert"]').textContent.trim() === 'You can try again now.',
    null,
    { timeout: 60000 },
  );
  check(!(await page.locator('button[type="submit"]').isDisabled()), 'the submit button stays disabled after the wait');
  noProblems(problems, 'throttling');
  await context.close();
}

/** theme: auto follows prefers-color-scheme; the operator's colour, CSS and favicon apply. */
async function autoTheme(browser, issuer) {
  for (const scheme of ['light', 'dark']) {
    const { context, page, problems } = await newPage(browser, { colorScheme: scheme });
    await page.goto(`${issuer}/device`);
    await appRendered(page, `auto ${scheme}`);
    const style = await page.evaluate(() => ({
      bg: getComputedStyle(document.body).backgroundColor,
      button: getComputedStyle(document.querySelector('button[type="submit"]')).backgroundColor,
      brand: getComputedStyle(document.querySelector('.ox-brand')).textTransform,
      icon: document.querySelector('link[rel="icon"]')?.href,
    }));
    const [r, g, b] = style.bg.match(/\d+/g).map(Number);
    check(((r + g + b) / 3 < 80) === (scheme === 'dark'), `auto theme with ${scheme} preference: background ${style.bg}`);
    check(style.button === 'rgb(124, 45, 18)', `frontend.colors.primary not applied: ${style.button}`);
    check(style.brand === 'uppercase', `frontend.customCSS not applied: ${style.brand}`);
    check(style.icon, 'no favicon link although frontend.favicon is set');
    const icon = await page.request.get(style.icon);
    check(icon.status() === 200 && icon.headers()['content-type'] === 'image/svg+xml', `favicon: ${icon.status()}`);
    check(/immutable/.test(icon.headers()['cache-control']), `favicon cache-control ${icon.headers()['cache-control']}`);
    await shot(page, `device-entry-auto-${scheme}-branded`);
    await audit(page, `auto theme ${scheme} (branded)`);
    noProblems(problems, `auto ${scheme}`);
    await context.close();
  }
}

const ENGLISH = {
  lang: 'en',
  loginTitle: 'Log in',
  usernameLabel: 'Email Address',
  passwordLabel: 'Password',
  invalid: 'Invalid username or password.',
  consentTitle: 'Grant access',
  approve: 'Grant access',
  emailScope: 'View your email address',
  unknownClient: 'Unknown application',
  locale: 'en-US',
};
const GERMAN = {
  lang: 'de',
  loginTitle: 'Anmelden',
  usernameLabel: 'E-Mail-Adresse',
  passwordLabel: 'Passwort',
  invalid: 'Benutzername oder Passwort ist falsch.',
  consentTitle: 'Zugriff erlauben',
  approve: 'Zugriff erlauben',
  emailScope: 'Ihre E-Mail-Adresse sehen',
  unknownClient: 'Unbekannte Anwendung',
  locale: 'de-DE',
};

async function flows(browser) {
  const light = env('OXIDEX_UI_LIGHT');
  const dark = env('OXIDEX_UI_DARK');
  const rp = await startRp(Number(env('OXIDEX_UI_RP_PORT')), [light, dark]);
  try {
    await login(browser, rp, { issuer: light, name: 'light', expect: { ...ENGLISH, dark: false }, wrongPassword: true, screenshotsFor: true });
    await login(browser, rp, { issuer: dark, name: 'dark', expect: { ...ENGLISH, dark: true }, wrongPassword: true, screenshotsFor: true });
    // German chosen by the RP's ui_locales (the browser asks for English).
    await login(browser, rp, { issuer: light, name: 'german', locale: 'en-US', uiLocales: 'de', expect: { ...GERMAN, dark: false }, wrongPassword: true, screenshotsFor: true });
    // German from Accept-Language alone.
    await login(browser, rp, { issuer: dark, name: 'german-accept-language', locale: 'de-DE', expect: GERMAN });
    await keyboardLogin(browser, rp, light);
    await withoutJavaScript(browser, rp, light);
    await grpcWebFallback(browser, rp, light);
    await otherPages(browser, light, '', ENGLISH);
    await otherPages(browser, dark, '-dark-german', GERMAN);
    await autoTheme(browser, env('OXIDEX_UI_AUTO'));
    await throttling(browser, rp, dark);
    const sub = process.env.OXIDEX_UI_EXPECTED_SUB;
    for (const r of rp.results) {
      check(r.email === USERNAME, `an RP login got email ${r.email}`);
      if (sub) check(r.sub === sub, `an RP login got sub ${r.sub}, expected ${sub}`);
    }
    check(rp.results.length === 7, `expected 7 completed RP logins, got ${rp.results.length}`);
    const measured = await measure(browser, rp, light);
    return { logins: rp.results.length, measured };
  } finally {
    rp.server.close();
  }
}

/** The device flow's browser half: enter the user code, log in, approve, see the success page. */
async function device(browser) {
  const issuer = env('OXIDEX_UI_LIGHT');
  const userCode = env('OXIDEX_UI_USER_CODE');
  const { context, page, problems, requests } = await newPage(browser);
  await page.goto(`${issuer}/device`);
  await appRendered(page, 'device entry');
  await shot(page, 'device-entry');
  await audit(page, 'device entry');
  // Typed in lower case without the dash: the app normalises it.
  await page.locator('#user_code').fill(userCode.replace('-', '').toLowerCase());
  await page.locator('#user_code').blur();
  check(
    (await page.locator('#user_code').inputValue()) === userCode,
    `device: the code is not normalised: ${await page.locator('#user_code').inputValue()}`,
  );
  // Two connectors: VerifyUserCode answers with the chooser, rendered in place.
  const before = await stepCount(page);
  await page.locator('button[type="submit"]').click();
  await stepRendered(page, before, 'device chooser');
  check((await page.getByRole('alert').count()) === 0, `device: the code was refused: ${await page.content()}`);
  check((await heading(page)) === 'Log in', `device: after the code the page says ${await heading(page)}`);
  await shot(page, 'device-chooser');
  await audit(page, 'device chooser');
  await page.locator('a[data-connector="local"]').click();
  await page.waitForURL(/\/auth\/local/);
  await appRendered(page, 'device login');
  await page.locator('#login').fill(USERNAME);
  await page.locator('#password').fill(PASSWORD);
  await page.locator('button[type="submit"]').click();
  await page.waitForURL(/\/approval/);
  await appRendered(page, 'device consent');
  await page.locator('button[value="approve"]').click();
  await page.waitForURL(/\/device\/callback/);
  await appRendered(page, 'device success');
  check((await heading(page)) === 'Login successful', `device: the success page says ${await heading(page)}`);
  const calls = grpcWebCalls(requests);
  check(calls.join() === 'VerifyUserCode,PasswordLogin,Approve', `device: gRPC-web calls ${calls}`);
  check(formPosts(requests).length === 0, `device: forms were posted: ${formPosts(requests)}`);
  await shot(page, 'device-success');
  await audit(page, 'device success');
  noProblems(problems, 'device');
  await context.close();
  return {};
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.OXIDEX_UI_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const result = MODE === 'device' ? await device(browser) : await flows(browser);
    console.log(JSON.stringify({ ok: true, mode: MODE, ...result, audits, screenshots }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e), audits, screenshots }));
  process.exit(1);
});
