// A relying party built on openid-client v6 (not written here) that logs in at `oxidex serve`:
// discovery, authorization code + PKCE (S256) + nonce + state, the RFC 9207 `iss` check, the code
// grant with ID-token validation (signature through the JWKS, nonce, and at_hash, which
// openid-client leaves to the application), userinfo, and a refresh that rotates the refresh
// token. The browser is `fetch` with `redirect: 'manual'` and a tiny cookie jar.
//
// Run by tests/openid_client_rp.rs. Configuration from the environment:
//   OXIDEX_RP_ISSUER, OXIDEX_RP_CLIENT_ID, OXIDEX_RP_CLIENT_SECRET, OXIDEX_RP_REDIRECT_URI,
//   OXIDEX_RP_USERNAME, OXIDEX_RP_PASSWORD, and optionally OXIDEX_RP_EXPECTED_SUB and
//   OXIDEX_RP_EXPECTED_EMAIL (defaults to the username).
// Prints a one-line JSON summary and exits 0 on success; exits 1 with a message on any failure.

import { createHash } from 'node:crypto';
import * as client from 'openid-client';

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

/** The HTML entities the provider's pages use, decoded. */
function unescapeHtml(s) {
  return s
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

/** The action and hidden inputs of the first form of a page. */
function parseForm(html, pageUrl) {
  const form = /<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  check(form, `no form in the page at ${pageUrl}:\n${html}`);
  const fields = new URLSearchParams();
  for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const attr = (name) => {
      const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(input);
      return m ? unescapeHtml(m[1]) : undefined;
    };
    if (attr('type') === 'hidden' && attr('name') !== undefined) {
      fields.append(attr('name'), attr('value') ?? '');
    }
  }
  return { action: new URL(unescapeHtml(form[1]), pageUrl), fields };
}

/** A browser: one cookie jar (honouring Path and Secure), redirects followed by hand. */
class Browser {
  #cookies = new Map(); // name -> { value, path, secure }

  #cookieHeader(url) {
    const pairs = [];
    for (const [name, c] of this.#cookies) {
      if (c.secure && url.protocol !== 'https:') continue;
      if (!url.pathname.startsWith(c.path)) continue;
      pairs.push(`${name}=${c.value}`);
    }
    return pairs.join('; ');
  }

  #store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const cookie = { value, path: '/', secure: false };
      let expired = value === '';
      for (const a of attributes) {
        const [k, v = ''] = a.split('=');
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) cookie.path = v;
        if (key === 'secure') cookie.secure = true;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, cookie);
    }
  }

  async request(url, init = {}) {
    url = new URL(url);
    const headers = new Headers(init.headers);
    const cookie = this.#cookieHeader(url);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#store(response);
    return response;
  }

  /**
   * Follows redirects inside the provider (below `issuer`) from `response`, until a page
   * (returned as { page: { url, status, html } }) or a redirect out of the provider (returned as
   * { left: URL }).
   */
  async follow(response, url, issuer) {
    for (let hops = 0; hops < 16; hops++) {
      if (response.status >= 300 && response.status < 400) {
        const location = response.headers.get('location');
        check(location, `a ${response.status} from ${url} without Location`);
        const next = new URL(location, url);
        if (!next.href.startsWith(`${issuer}/`)) return { left: next };
        url = next;
        response = await this.request(url);
        continue;
      }
      return { page: { url, status: response.status, html: await response.text() } };
    }
    fail('more than 16 redirects inside the provider');
  }
}

/** Runs the browser part of the flow from the authorization URL to the redirect to the client. */
async function logIn(browser, authorizationUrl, issuer, username, password) {
  let stop = await browser.follow(await browser.request(authorizationUrl), authorizationUrl, issuer);
  for (let step = 0; step < 4; step++) {
    if (stop.left) return stop.left;
    const { url, status, html } = stop.page;
    check(status === 200, `the flow stopped at ${url} with status ${status}:\n${html}`);
    const form = parseForm(html, url);
    let response;
    if (html.includes('name="password"')) {
      form.fields.set('login', username);
      form.fields.set('password', password);
      response = await browser.request(form.action, { method: 'POST', body: form.fields });
      // 302 or 303, never 307, which would make a browser re-POST the password (RFC 9700 §4.12).
      check(
        response.status === 302 || response.status === 303,
        `the login POST to ${form.action} answered ${response.status}: ${await response.text()}`,
      );
    } else if (html.includes('name="approval"')) {
      form.fields.set('approval', 'approve');
      response = await browser.request(form.action, { method: 'POST', body: form.fields });
    } else {
      fail(`neither a password form nor a consent page at ${url}:\n${html}`);
    }
    stop = await browser.follow(response, form.action, issuer);
  }
  fail('the flow did not reach the client after 4 pages');
}

function decodeJwtPart(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'));
}

/** OIDC Core §3.1.3.6: at_hash is the left half of the hash of the access token's ASCII octets. */
function checkAtHash(idToken, accessToken, what) {
  const { alg } = decodeJwtPart(idToken, 0);
  const bits = { RS256: 256, ES256: 256, PS256: 256, RS384: 384, ES384: 384, PS384: 384, RS512: 512, PS512: 512, ES512: 512 }[alg];
  check(bits, `${what}: unexpected ID token alg ${alg}`);
  const digest = createHash(`sha${bits}`).update(accessToken, 'ascii').digest();
  const expected = digest.subarray(0, digest.length / 2).toString('base64url');
  const { at_hash: atHash } = decodeJwtPart(idToken, 1);
  check(atHash !== undefined, `${what}: the ID token has no at_hash`);
  check(atHash === expected, `${what}: at_hash ${atHash} does not match the access token (expected ${expected})`);
  return alg;
}

/** A token-endpoint failure's OAuth error code, or undefined if it was not one. */
function oauthError(err) {
  return err instanceof client.ResponseBodyError ? err.error : undefined;
}

async function main() {
  const issuer = env('OXIDEX_RP_ISSUER').replace(/\/$/, '');
  const clientId = env('OXIDEX_RP_CLIENT_ID');
  const clientSecret = env('OXIDEX_RP_CLIENT_SECRET');
  const redirectUri = env('OXIDEX_RP_REDIRECT_URI');
  const username = env('OXIDEX_RP_USERNAME');
  const password = env('OXIDEX_RP_PASSWORD');
  const expectedSub = process.env.OXIDEX_RP_EXPECTED_SUB || undefined;
  const expectedEmail = env('OXIDEX_RP_EXPECTED_EMAIL', username);

  // Discovery. The issuer is plain http on loopback; non-repudiation checks make openid-client
  // verify the ID tokens' signatures against the provider's JWKS.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
  });
  const metadata = config.serverMetadata();
  check(metadata.issuer === issuer, `discovery issuer ${metadata.issuer}, expected ${issuer}`);
  check(
    metadata.code_challenge_methods_supported?.includes('S256'),
    `discovery does not advertise PKCE S256: ${JSON.stringify(metadata.code_challenge_methods_supported)}`,
  );

  // Authorization request with PKCE, nonce and state.
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const nonce = client.randomNonce();
  const state = client.randomState();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile offline_access',
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    nonce,
    state,
  });

  const callback = await logIn(new Browser(), authorizationUrl, issuer, username, password);
  check(
    callback.href.startsWith(redirectUri),
    `the flow ended at ${callback.href}, not at the redirect URI ${redirectUri}`,
  );
  check(!callback.searchParams.has('error'), `the provider answered with an error: ${callback.href}`);

  // Code exchange: openid-client checks state, iss (RFC 9207), the PKCE verifier, and the ID
  // token's signature, iss, aud, exp, iat and nonce.
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  check(claims, 'the code grant returned no ID token');
  if (expectedSub !== undefined) {
    check(claims.sub === expectedSub, `ID token sub ${claims.sub}, expected ${expectedSub}`);
  }
  check(claims.email === expectedEmail, `ID token email ${claims.email}, expected ${expectedEmail}`);
  check(claims.nonce === nonce, `ID token nonce ${claims.nonce}, expected ${nonce}`);
  check(claims.iss === issuer, `ID token iss ${claims.iss}, expected ${issuer}`);
  const alg = checkAtHash(tokens.id_token, tokens.access_token, 'code grant');
  check(tokens.refresh_token, 'no refresh token although offline_access was granted');

  // Userinfo: openid-client checks that its sub is the ID token's.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  check(userinfo.sub === claims.sub, `userinfo sub ${userinfo.sub}, ID token sub ${claims.sub}`);
  check(userinfo.email === expectedEmail, `userinfo email ${userinfo.email}, expected ${expectedEmail}`);

  // Refresh: a new refresh token and a new valid ID token for the same subject.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token, 'the refresh answered no refresh token');
  check(refreshed.refresh_token !== tokens.refresh_token, 'the refresh did not rotate the refresh token');
  check(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'the refresh returned no new access token');
  const refreshedClaims = refreshed.claims();
  check(refreshedClaims, 'the refresh answered no ID token');
  check(refreshedClaims.sub === claims.sub, `refreshed ID token sub ${refreshedClaims.sub}, expected ${claims.sub}`);
  check(
    JSON.stringify(refreshedClaims.aud) === JSON.stringify(claims.aud),
    `refreshed ID token aud ${JSON.stringify(refreshedClaims.aud)}, expected ${JSON.stringify(claims.aud)}`,
  );
  checkAtHash(refreshed.id_token, refreshed.access_token, 'refresh grant');
  const refreshedInfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  check(refreshedInfo.sub === claims.sub, `userinfo with the refreshed access token: sub ${refreshedInfo.sub}`);

  // Self-check of the signature validation: the same refresh response with one signature byte
  // changed must be refused by openid-client. (This spends the rotated refresh token.)
  const honestFetch = config[client.customFetch] ?? fetch;
  config[client.customFetch] = async (url, options) => {
    const response = await honestFetch(url, options);
    if (new URL(url).href !== metadata.token_endpoint || !response.ok) return response;
    const body = await response.json();
    const [h, p, s] = body.id_token.split('.');
    const i = Math.floor(s.length / 2);
    body.id_token = `${h}.${p}.${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    return new Response(JSON.stringify(body), { status: response.status, headers });
  };
  let tampered;
  try {
    tampered = await client.refreshTokenGrant(config, refreshed.refresh_token);
  } catch (err) {
    const reason = `${err?.message ?? err} (${err?.cause?.message ?? 'no cause'})`;
    check(/signature/i.test(reason), `the tampered refresh failed, but not on the signature: ${reason}`);
  }
  check(tampered === undefined, 'openid-client accepted an ID token with a broken signature (the signature check is off)');
  config[client.customFetch] = honestFetch;

  // The old refresh token is refused (RFC 6749 §5.2 invalid_grant; RFC 9700 §4.14.2 rotation).
  let replay;
  try {
    replay = await client.refreshTokenGrant(config, tokens.refresh_token);
  } catch (err) {
    const code = oauthError(err);
    check(code === 'invalid_grant', `the old refresh token was refused with ${code ?? err}, expected invalid_grant`);
  }
  check(replay === undefined, 'the old refresh token was accepted after rotation');

  console.log(
    JSON.stringify({
      ok: true,
      library: 'openid-client',
      issuer,
      sub: claims.sub,
      email: claims.email,
      alg,
      refreshRotated: true,
      oldRefreshRejected: true,
    }),
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    const detail =
      err instanceof Failure
        ? err.message
        : `${err?.name ?? 'Error'}: ${err?.message ?? err}${err?.code ? ` (${err.code})` : ''}${
            err?.error ? ` [${err.error}: ${err.error_description ?? ''}]` : ''
          }${err?.cause ? `\ncause: ${JSON.stringify(err.cause, null, 2)}` : ''}\n${err?.stack ?? ''}`;
    console.error(`openid-client RP FAILED: ${detail}`);
    process.exit(1);
  },
);
