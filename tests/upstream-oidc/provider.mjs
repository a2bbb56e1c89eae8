// The upstream OpenID provider of tests/oidc_connector.rs: the certified npm `oidc-provider`
// on 127.0.0.1, with one client (Oxidex) and one account, and its own login and consent pages
// (plain HTML forms the test submits with a cookie-keeping HTTP client).
//
// Environment: UPSTREAM_PORT, UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET, UPSTREAM_REDIRECT_URI.
// Prints `READY <issuer>` on stdout once it listens.
//
// Test-only endpoints (no authentication; loopback only):
//   GET  /test/stats            -> {"refreshGrants": n, "codeGrants": n}
//   POST /test/groups?set=a,b   -> changes the account's groups claim
//   POST /test/revoke           -> destroys every grant (refresh tokens stop working)

import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.UPSTREAM_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.UPSTREAM_CLIENT_ID;
const clientSecret = process.env.UPSTREAM_CLIENT_SECRET;
const redirectUri = process.env.UPSTREAM_REDIRECT_URI;

const ACCOUNTS = {
  jane: {
    password: 'upstream-password',
    claims: {
      sub: 'jane-0001',
      name: 'Jane Doe',
      nickname: 'jd',
      email: 'jane@upstream.test',
      email_verified: true,
      groups: ['admins', 'developers', 'ops'],
      employee_id: '4711',
      department: 'R&D',
      org: 'acme',
    },
  },
};

const stats = { refreshGrants: 0, codeGrants: 0 };
const grantIds = new Set();

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // Oxidex must send a PKCE challenge: without one this provider refuses the request.
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'nickname', 'employee_id', 'department', 'org'],
    groups: ['groups'],
  },
  // Claims go into the ID token itself, not only to userinfo.
  conformIdTokenClaims: false,
  // Every refresh rotates the refresh token, and reusing a rotated one revokes the grant: a
  // refresh burst that reached the upstream more than once would fail.
  rotateRefreshToken: true,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['oxidex-upstream-test-cookie-key'] },
  async findAccount(ctx, id) {
    const account = Object.values(ACCOUNTS).find((a) => a.claims.sub === id);
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ ...account.claims }) };
  },
});

provider.on('grant.success', (ctx) => {
  const grantType = ctx.oidc.params?.grant_type;
  if (grantType === 'refresh_token') stats.refreshGrants += 1;
  if (grantType === 'authorization_code') stats.codeGrants += 1;
});
provider.on('grant.saved', (grant) => grantIds.add(grant.jti));
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html><body>${body}</body></html>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'wrong interaction');
  const { prompt, params, session } = details;
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const account = ACCOUNTS[form.get('login')];
    if (!account || account.password !== form.get('password')) {
      return page(res, 200, `<p id="error">Invalid login</p>${loginForm(uid)}`);
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.claims.sub } },
      { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && req.method === 'POST') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (prompt.name === 'login') return page(res, 200, loginForm(uid));
  return page(res, 200,
    `<p>Allow ${escape(params.client_id)} to see ${escape(params.scope)}?</p>
     <form method="post" action="/interaction/${escape(uid)}/confirm">
       <input type="hidden" name="confirm" value="yes"><button type="submit">Allow</button>
     </form>`);
}

function loginForm(uid) {
  return `<form method="post" action="/interaction/${escape(uid)}/login">
    <input type="text" name="login"><input type="password" name="password">
    <button type="submit">Sign in</button></form>`;
}

const callback = provider.callback();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (url.pathname === '/test/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stats));
    }
    if (url.pathname === '/test/groups' && req.method === 'POST') {
      ACCOUNTS.jane.claims.groups = (url.searchParams.get('set') || '').split(',').filter(Boolean);
      res.writeHead(204);
      return res.end();
    }
    if (url.pathname === '/test/revoke' && req.method === 'POST') {
      for (const id of grantIds) {
        const grant = await provider.Grant.find(id);
        if (grant) await grant.destroy();
      }
      grantIds.clear();
      res.writeHead(204);
      return res.end();
    }
    return callback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) page(res, 500, 'upstream test server error');
    return undefined;
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
