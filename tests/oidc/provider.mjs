// A real OpenID Connect provider for the login tests: the certified `oidc-provider`
// package with its development login pages (any password; the login is the account id).
// Started and stopped by tests/identity.py; everything is passed in the environment.
import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const PORT = Number(process.env.OIDC_PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CALLBACKS = process.env.OIDC_REDIRECT_URIS.split(',');
const ACCOUNTS = JSON.parse(process.env.OIDC_ACCOUNTS); // {id: {email, name, groups}}
// Service clients of nasindex's HTTP API (client-credentials grant): {id: {secret, groups}};
// their access tokens are JWTs for the API's audience (a resource indicator).
const SERVICES = JSON.parse(process.env.OIDC_SERVICES || '{}');
const API_AUDIENCE = process.env.OIDC_API_AUDIENCE;

const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const provider = new Provider(ISSUER, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: CALLBACKS,
    post_logout_redirect_uris: CALLBACKS,
  }, ...Object.entries(SERVICES).map(([id, s]) => ({
    client_id: id, client_secret: s.secret, grant_types: ['client_credentials'],
    response_types: [], redirect_uris: [], scope: 'api',
  }))],
  jwks: { keys: [{ ...jwk, kid: 'test', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [process.env.OIDC_COOKIE_KEY] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'],
            groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'api'],
  // Streamlit reads only the ID token: the scope claims must be in it.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (SERVICES[client.clientId] ? API_AUDIENCE : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resource) {
        if (resource !== API_AUDIENCE) throw new errors.InvalidTarget();
        return { scope: 'api', audience: API_AUDIENCE, accessTokenFormat: 'jwt',
                 accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  async extraTokenClaims(ctx, token) { // the groups of a service client, as for a person
    const service = SERVICES[token.clientId];
    return service && token.kind === 'ClientCredentials' ? { groups: service.groups } : undefined;
  },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    return account && { accountId: id,
                        claims: async () => ({ sub: id, email_verified: true, ...account }) };
  },
  async loadExistingGrant(ctx) { // first-party client: consent is implied
    const id = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId,
                                                accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});
// Streamlit asks for prompt=select_account, which this provider does not know: show the
// login form instead (what a clinic's IdP does for a shared workstation).
provider.use(async (ctx, next) => {
  if (ctx.path === '/auth' && ctx.query.prompt) {
    ctx.query = { ...ctx.query, prompt: String(ctx.query.prompt).replace('select_account', 'login') };
  }
  await next();
});
provider.listen(PORT, '127.0.0.1', () => console.log(`provider ready at ${ISSUER}`));
