// The users of a Cognito user pool kept by moto (a Cognito API emulator in server mode), for
// idp.mjs's `--moto-endpoint URL --moto-pool ID`: the test provider then signs in the people
// an admin created there (ssogate's admin page or CLI) instead of its fixed users. Talks
// Cognito's JSON protocol (POST, `X-Amz-Target`); moto accepts any credentials, so requests
// carry a fixed, unsigned test credential scope. Never caches a user: every sign-in, token
// and refresh asks moto again, so a user disabled or deleted there is refused at once.

const TARGET = 'AWSCognitoIdentityProviderService';

export class MotoError extends Error {
  constructor(type, message) {
    super(`${type}: ${message}`);
    this.type = type;
  }
}

export function motoUsers({ endpoint, pool }) {
  // moto files a pool under the region of the request's credential scope: the pool id's.
  const region = pool.split('_')[0];
  const auth = `AWS4-HMAC-SHA256 Credential=test/20260101/${region}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0`;
  // sub -> username, learnt at sign-in: oidc-provider names accounts by sub only.
  const usernames = new Map();
  let clientId; // the provider's own app client in the pool (for AdminInitiateAuth)

  async function call(action, body) {
    const resp = await fetch(endpoint, {
      method: 'POST',
      headers: { 'X-Amz-Target': `${TARGET}.${action}`, 'Content-Type': 'application/x-amz-json-1.1', Authorization: auth },
      body: JSON.stringify(body),
    });
    const text = await resp.text();
    let json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { message: text };
    }
    if (!resp.ok) {
      const type = String(json.__type ?? resp.status).split('#').pop();
      throw new MotoError(type, json.message ?? json.Message ?? text);
    }
    return json;
  }

  const attr = (user, name) => (user.UserAttributes ?? []).find((a) => a.Name === name)?.Value;

  async function appClient() {
    clientId ??= (await call('CreateUserPoolClient', {
      UserPoolId: pool,
      ClientName: 'test-idp',
      ExplicitAuthFlows: ['ALLOW_ADMIN_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
    })).UserPoolClient.ClientId;
    return clientId;
  }

  // The user record, or undefined when not found (deleted).
  async function getUser(username) {
    try {
      return await call('AdminGetUser', { UserPoolId: pool, Username: username });
    } catch (err) {
      if (err.type === 'UserNotFoundException') return undefined;
      throw err;
    }
  }

  // { sub, username, email, email_verified, groups, enabled } as the pool has them now.
  async function profile(username) {
    const user = await getUser(username);
    if (!user) return undefined;
    const groups = (await call('AdminListGroupsForUser', { UserPoolId: pool, Username: username })).Groups ?? [];
    const sub = attr(user, 'sub');
    usernames.set(sub, username);
    return {
      sub,
      username,
      email: attr(user, 'email'),
      email_verified: attr(user, 'email_verified') === 'true',
      groups: groups.map((g) => g.GroupName),
      enabled: user.Enabled !== false,
    };
  }

  return {
    profile,

    // The user a sub names (enabled or not), read now; undefined when they no longer exist.
    async bySub(sub) {
      const username = usernames.get(sub);
      const p = username && (await profile(username));
      return p && p.sub === sub ? p : undefined;
    },

    // Checks the password with AdminInitiateAuth (ADMIN_USER_PASSWORD_AUTH), as the hosted UI
    // does. Answers { user } when signed in, { newPasswordSession } when the password was a
    // temporary one that must be replaced first, or { error } in the hosted UI's words.
    async signIn(username, password) {
      try {
        const answer = await call('AdminInitiateAuth', {
          UserPoolId: pool,
          ClientId: await appClient(),
          AuthFlow: 'ADMIN_USER_PASSWORD_AUTH',
          AuthParameters: { USERNAME: username, PASSWORD: password },
        });
        if (answer.ChallengeName === 'NEW_PASSWORD_REQUIRED') return { newPasswordSession: answer.Session };
        if (answer.ChallengeName) return { error: `Challenge ${answer.ChallengeName} is not supported here.` };
        return { user: await profile(username) };
      } catch (err) {
        return { error: signInError(err) };
      }
    },

    // Answers the NEW_PASSWORD_REQUIRED challenge; same answers as signIn.
    async setNewPassword(username, session, newPassword) {
      try {
        await call('AdminRespondToAuthChallenge', {
          UserPoolId: pool,
          ClientId: await appClient(),
          ChallengeName: 'NEW_PASSWORD_REQUIRED',
          Session: session,
          ChallengeResponses: { USERNAME: username, NEW_PASSWORD: newPassword },
        });
        return { user: await profile(username) };
      } catch (err) {
        return { error: signInError(err) };
      }
    },
  };
}

// The hosted UI's words for a refused sign-in.
function signInError(err) {
  if (!(err instanceof MotoError)) throw err;
  if (err.type === 'NotAuthorizedException' && /disabled/i.test(err.message)) return 'User is disabled.';
  if (err.type === 'InvalidPasswordException') return 'Password does not conform to policy.';
  return 'Incorrect username or password.';
}
