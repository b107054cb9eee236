// A real OpenID Connect provider for the login tests: the certified `oidc-provider`
// package with its development login pages (any password; the login is the account id).
// Started and stopped by tests/identity.py; everything is passed in the environment.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.OIDC_PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CALLBACKS = process.env.OIDC_REDIRECT_URIS.split(',');
const ACCOUNTS = JSON.parse(process.env.OIDC_ACCOUNTS); // {id: {email, name, groups}}

const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const provider = new Provider(ISSUER, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: CALLBACKS,
    post_logout_redirect_uris: CALLBACKS,
  }],
  jwks: { keys: [{ ...jwk, kid: 'test', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [process.env.OIDC_COOKIE_KEY] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'],
            groups: ['groups'] },
  // Streamlit reads only the ID token: the scope claims must be in it.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
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
