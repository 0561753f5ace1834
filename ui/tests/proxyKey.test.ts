import { describe, expect, it, vi } from 'vitest';
import { appendProxyKey, generateProxyKey, randomString, splitProxyKeys } from '@/utils/proxyKey';

describe('proxy key generator', () => {
  it('makes sk- plus 48 alphanumeric characters', () => {
    for (let i = 0; i < 50; i++) expect(generateProxyKey()).toMatch(/^sk-[A-Za-z0-9]{48}$/);
  });

  it('uses crypto.getRandomValues, not Math.random', () => {
    const spy = vi.spyOn(globalThis.crypto, 'getRandomValues');
    const math = vi.spyOn(Math, 'random');
    generateProxyKey();
    expect(spy).toHaveBeenCalled();
    expect(math).not.toHaveBeenCalled();
    spy.mockRestore();
    math.mockRestore();
  });

  it('rejects bytes that would bias the alphabet', () => {
    // First fill: only 255s (all rejected); second fill: 0..k → 'A','B',…
    let call = 0;
    const fake = {
      getRandomValues<T extends ArrayBufferView | null>(buf: T): T {
        const a = buf as unknown as Uint8Array;
        a.forEach((_, i) => (a[i] = call === 0 ? 255 : i));
        call++;
        return buf;
      },
    } as unknown as Crypto;
    expect(randomString(5, fake)).toBe('ABCDE');
    expect(call).toBe(2);
  });

  it('does not repeat', () => {
    const seen = new Set(Array.from({ length: 200 }, () => generateProxyKey()));
    expect(seen.size).toBe(200);
  });

  it('appends to a list the way the server splits it', () => {
    expect(splitProxyKeys(' a, b\nc,, ')).toEqual(['a', 'b', 'c']);
    expect(appendProxyKey('', 'sk-x')).toBe('sk-x');
    expect(appendProxyKey('a, b,', 'sk-x')).toBe('a,b,sk-x');
  });
});
