import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { messages } from '@/i18n';

function flatten(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? flatten(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(vue|ts)$/.test(f) && !p.includes('/i18n/') ? [p] : [];
  });
}

describe('translations', () => {
  const en = flatten(messages['en-US']).sort();

  it('have the same keys in every language', () => {
    expect(flatten(messages['zh-CN']).sort()).toEqual(en);
    expect(flatten(messages['ja-JP']).sort()).toEqual(en);
  });

  it('have no empty strings', () => {
    for (const l of Object.values(messages)) {
      const walk = (o: Record<string, unknown>) =>
        Object.values(o).forEach((v) => (typeof v === 'string' ? expect(v.trim()).not.toBe('') : walk(v as Record<string, unknown>)));
      walk(l);
    }
  });

  it('cover every literal key the code uses', () => {
    const used = new Set<string>();
    for (const file of sources(join(__dirname, '../src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt\(\s*'([a-zA-Z0-9_.]+)'/g)) used.add(m[1]!);
      // Template keys: check their static prefix exists.
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt\(\s*`([a-zA-Z0-9_.]+)\.\$\{/g)) used.add(`${m[1]}.*`);
    }
    const known = new Set(en);
    const missing = [...used].filter((k) => (k.endsWith('.*') ? !en.some((e) => e.startsWith(k.slice(0, -1))) : !known.has(k)));
    expect(missing).toEqual([]);
    expect(used.size).toBeGreaterThan(150);
  });
});
