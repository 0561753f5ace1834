// Proxy keys: `sk-` + 48 characters from the browser's CSPRNG (GPT-Load used Math.random).

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const PROXY_KEY_BODY_LENGTH = 48;

/** A random string over `ALPHABET`, without modulo bias (bytes ≥ 248 are drawn again). */
export function randomString(length: number, rng: Crypto = globalThis.crypto): string {
  const limit = 256 - (256 % ALPHABET.length); // 248
  let out = '';
  const buf = new Uint8Array(Math.max(16, length * 2));
  while (out.length < length) {
    rng.getRandomValues(buf);
    for (const b of buf) {
      if (b >= limit) continue;
      out += ALPHABET[b % ALPHABET.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export function generateProxyKey(rng: Crypto = globalThis.crypto): string {
  return `sk-${randomString(PROXY_KEY_BODY_LENGTH, rng)}`;
}

/** Splits a proxy-key list as the server does (commas or newlines, trimmed, empties dropped). */
export function splitProxyKeys(s: string): string[] {
  return s
    .split(/[,\n]/)
    .map((k) => k.trim())
    .filter(Boolean);
}

/** Appends a key to a comma-separated list. */
export function appendProxyKey(list: string, key: string): string {
  const keys = splitProxyKeys(list);
  keys.push(key);
  return keys.join(',');
}
