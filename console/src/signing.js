// Signing requests exactly as the SDK does (cityshare/signing.py): an ES256 JWT bound to the
// method, the request target (path relative to the API root, query sorted, RFC 3986 encoded) and the
// SHA-256 of the body bytes, single-use (jti), one minute long. The private key never leaves WebCrypto.

export const TOKEN_TYPE = "cityshare-request+jwt";
const LIFETIME_SECONDS = 60;
const encoder = new TextEncoder();

export function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Python's quote(text, safe=...): everything but unreserved characters (and `safe`) percent-encoded.
function quote(text, safe = "") {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~-]/.test(char) || safe.includes(char) ? char : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function unquote(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function requestTarget(pathAndQuery) {
  const [path, query = ""] = pathAndQuery.split(/\?(.*)/s);
  const pairs = query
    .split("&")
    .filter((part) => part.length)
    .map((part) => {
      const [name, value = ""] = part.split(/=(.*)/s);
      return [unquote(name.replace(/\+/g, " ")), unquote(value.replace(/\+/g, " "))];
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const encoded = pairs.map(([name, value]) => `${quote(name)}=${quote(value)}`).join("&");
  return quote(unquote(path), "/") + (encoded ? `?${encoded}` : "");
}

export async function bodyHash(bytes) {
  return base64url(await crypto.subtle.digest("SHA-256", bytes));
}

// RFC 7638 thumbprint of a P-256 public JWK: the kid the directory gives the key.
export async function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return base64url(await crypto.subtle.digest("SHA-256", encoder.encode(canonical)));
}

export async function signedToken(identity, privateKey, method, target, body) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: "ES256", kid: identity.kid, typ: TOKEN_TYPE };
  const claims = {
    iss: identity.department,
    sub: identity.principal,
    aud: identity.audience,
    iat: now,
    exp: now + LIFETIME_SECONDS,
    jti: base64url(crypto.getRandomValues(new Uint8Array(24))),
    htm: method.toUpperCase(),
    htu: target,
    bsh: await bodyHash(body),
  };
  const signingInput = `${base64url(encoder.encode(JSON.stringify(header)))}.${base64url(encoder.encode(JSON.stringify(claims)))}`;
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, encoder.encode(signingInput));
  return `${signingInput}.${base64url(signature)}`; // WebCrypto's ECDSA signature is r||s: exactly JWS ES256
}
