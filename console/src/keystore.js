// The person's key pair lives in IndexedDB as a CryptoKeyPair whose private key is not extractable:
// scripts on the page can sign with it, nothing can read it out. No bearer secret is ever stored.

import { thumbprint } from "./signing.js";

const DATABASE = "cityshare-console";
const STORE = "identity";
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, action) {
  const database = await open();
  return new Promise((resolve, reject) => {
    const store = database.transaction(STORE, mode).objectStore(STORE);
    const request = action(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export const loadIdentity = () => transaction("readonly", (store) => store.get("current"));
export const saveIdentity = (identity) => transaction("readwrite", (store) => store.put(identity, "current"));
export const forgetIdentity = () => transaction("readwrite", (store) => store.delete("current"));

async function publicJwk(publicKey) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", publicKey);
  const jwk = { kty, crv, x, y, alg: "ES256" };
  return { jwk, kid: await thumbprint(jwk) };
}

// A new key pair for `department`/`principal`: its public JWK is what the platform admin registers.
export async function enrol(department, principal, audience) {
  const pair = await crypto.subtle.generateKey(ALGORITHM, false, ["sign", "verify"]);
  const { jwk, kid } = await publicJwk(pair.publicKey);
  const identity = { department, principal, audience, kid, jwk, privateKey: pair.privateKey, publicKey: pair.publicKey };
  await saveIdentity(identity);
  return identity;
}

// An existing key (PKCS#8 PEM, as `cityshare keys generate` writes), imported once as non-extractable.
export async function importKey(department, principal, audience, pem) {
  const der = Uint8Array.from(atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  const readable = await crypto.subtle.importKey("pkcs8", der, ALGORITHM, true, ["sign"]);
  const { d, ...rest } = await crypto.subtle.exportKey("jwk", readable);
  const publicKey = await crypto.subtle.importKey("jwk", { ...rest, key_ops: ["verify"] }, ALGORITHM, true, ["verify"]);
  const privateKey = await crypto.subtle.importKey("pkcs8", der, ALGORITHM, false, ["sign"]);
  void d;
  const { jwk, kid } = await publicJwk(publicKey);
  const identity = { department, principal, audience, kid, jwk, privateKey, publicKey };
  await saveIdentity(identity);
  return identity;
}
