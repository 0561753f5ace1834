import { describe, expect, it } from 'vitest';
import type { Schemas } from '@/api/client';
import { makeGroup } from './fixtures';
import { aggregateModels, countNew, filterModels, globMatch, mergeModels, reasonText, tierShares } from '@/utils/routing';

type Group = Schemas['Group'];
const group = makeGroup;

describe('globMatch', () => {
  it('matches as the data plane does', () => {
    for (const [p, t] of [
      ['gpt-4o', 'gpt-4o'],
      ['gpt-4o*', 'gpt-4o-mini'],
      ['gpt-4o*', 'gpt-4o'],
      ['*', 'anything'],
      ['claude-?-haiku', 'claude-3-haiku'],
      ['*-mini', 'o3-mini'],
      ['a*b*c', 'aXbYbZc'],
    ]) {
      expect(globMatch(p!, t!), `${p} ${t}`).toBe(true);
    }
    for (const [p, t] of [
      ['gpt-4o', 'gpt-4o-mini'],
      ['GPT-4o*', 'gpt-4o'],
      ['claude-?-haiku', 'claude-35-haiku'],
      ['*-mini', 'o3-mini-high'],
      ['gpt-4o?', 'gpt-4o'],
    ]) {
      expect(globMatch(p!, t!), `${p} ${t}`).toBe(false);
    }
  });
});

describe('aggregateModels', () => {
  const groups: Group[] = [
    group({ id: 1, name: 'openai-main', display_name: 'Main', models: ['gpt-4o', 'gpt-4o-mini'], priority: 1, weight: 3 }),
    group({ id: 2, name: 'openai-backup', models: ['gpt-4o*'], priority: 2, weight: 1 }),
    group({ id: 3, name: 'claude', channel_type: 'anthropic', models: ['claude-*'], model_redirect_rules: { fast: 'claude-3-5-haiku' } }),
    // Same priority as openai-main, higher weight: listed before it.
    group({ id: 4, name: 'openai-heavy', models: [' gpt-4o ', 'gpt-4o'], priority: 1, weight: 9, model_redirect_rules: { 'gpt-4o': 'gpt-4.1' } }),
    // No models: reachable only through /proxy, its alias does not count.
    group({ id: 5, name: 'proxy-only', models: [], model_redirect_rules: { hidden: 'x' } }),
    // Aggregates are never routed by model.
    group({ id: 6, name: 'agg', group_type: 'aggregate', models: ['agg-model'] }),
  ];
  const models = aggregateModels(groups);
  const byName = new Map(models.map((m) => [m.model, m]));

  it('lists every name, pattern and alias of the routable groups, sorted, once each', () => {
    expect(models.map((m) => m.model)).toEqual(['claude-*', 'fast', 'gpt-4o', 'gpt-4o-mini', 'gpt-4o*']);
    expect(byName.get('gpt-4o*')!.glob).toBe(true);
    expect(byName.get('gpt-4o')!.glob).toBe(false);
    expect(byName.has('hidden')).toBe(false);
    expect(byName.has('agg-model')).toBe(false);
  });

  it('names the groups serving each model in routing order, and how', () => {
    const gpt4o = byName.get('gpt-4o')!;
    expect(gpt4o.servers.map((s) => [s.name, s.via, s.detail])).toEqual([
      // An alias wins over the same name listed: the redirect applies.
      ['openai-heavy', 'alias', 'gpt-4.1'],
      ['openai-main', 'name', undefined],
      ['openai-backup', 'pattern', 'gpt-4o*'],
    ]);
    expect(gpt4o.servers[1]).toMatchObject({ group_id: 1, display_name: 'Main', channel_type: 'openai', priority: 1, weight: 3 });
    expect(byName.get('gpt-4o-mini')!.servers.map((s) => s.name)).toEqual(['openai-main', 'openai-backup']);
    // A pattern is served by the groups listing it, not by other patterns.
    expect(byName.get('gpt-4o*')!.servers.map((s) => [s.name, s.via])).toEqual([['openai-backup', 'name']]);
    expect(byName.get('fast')!.servers.map((s) => [s.name, s.via, s.detail])).toEqual([['claude', 'alias', 'claude-3-5-haiku']]);
  });

  it('gives the distinct protocols of the serving groups, the first one first', () => {
    const mixed = aggregateModels([
      group({ id: 1, name: 'a', channel_type: 'gemini', models: ['shared'], priority: 0 }),
      group({ id: 2, name: 'b', channel_type: 'openai', models: ['shared'], priority: 1 }),
      group({ id: 3, name: 'c', channel_type: 'gemini', models: ['shared'], priority: 2 }),
    ]);
    expect(mixed[0]!.protocols).toEqual(['gemini', 'openai']);
  });

  it('is empty when no group has models', () => {
    expect(aggregateModels([group({ id: 1, name: 'x' })])).toEqual([]);
  });

  it('filters by model or group name, in any case', () => {
    expect(filterModels(models, 'MINI').map((m) => m.model)).toEqual(['gpt-4o-mini']);
    expect(filterModels(models, 'claude').map((m) => m.model)).toEqual(['claude-*', 'fast']);
    expect(filterModels(models, 'main').map((m) => m.model)).toEqual(['gpt-4o', 'gpt-4o-mini']);
    expect(filterModels(models, '  ')).toBe(models);
  });
});

describe('mergeModels', () => {
  it('keeps what is there first, adds the picked ones, drops blanks and duplicates', () => {
    expect(mergeModels(['gpt-4o*', 'e2e'], ['gpt-4o', 'e2e', ' gpt-4.1 ', '', 'gpt-4o'])).toEqual(['gpt-4o*', 'e2e', 'gpt-4o', 'gpt-4.1']);
    expect(mergeModels([], ['b', 'a'])).toEqual(['b', 'a']);
    expect(mergeModels(['a'], [])).toEqual(['a']);
  });

  it('counts only the models it adds', () => {
    expect(countNew(['a', 'b'], ['b', 'c', 'c', 'd'])).toBe(2);
    expect(countNew(['a'], ['a'])).toBe(0);
    expect(countNew([' a ', 'a'], ['a', 'b'])).toBe(1);
  });
});

describe('reasonText', () => {
  it('knows the reasons the inspector gives', () => {
    expect(reasonText("does not serve model 'gpt-5'")).toEqual({ key: 'modelNotServed', params: { model: 'gpt-5' } });
    expect(reasonText('its channel (gemini) does not serve this protocol')).toEqual({ key: 'channel', params: { channel: 'gemini' } });
    expect(reasonText('no models configured: reachable only through /proxy/{group}')?.key).toBe('noModels');
    expect(reasonText('an aggregate group: reachable only through /proxy/{group}')?.key).toBe('aggregate');
    expect(reasonText("the access key's group filter excludes it")?.key).toBe('groupFilter');
    expect(reasonText('weight 0: takes no traffic')?.key).toBe('weightZero');
    expect(reasonText('every key is blacklisted')?.key).toBe('allBlacklisted');
    expect(reasonText('no active keys')?.key).toBe('noActiveKeys');
    expect(reasonText('the access key is disabled')?.key).toBe('keyDisabled');
    expect(reasonText('the access key has expired')?.key).toBe('keyExpired');
    expect(reasonText('the access key may not use the anthropic protocol')).toEqual({ key: 'protocolFilter', params: { protocol: 'anthropic' } });
    expect(reasonText("the access key may not use model 'o3'")).toEqual({ key: 'modelFilter', params: { model: 'o3' } });
  });

  it('leaves a reason it does not know to be shown as written', () => {
    expect(reasonText('a new reason the server learned')).toBeNull();
  });
});

describe('tierShares', () => {
  it('splits each tier by weight', () => {
    const shares = tierShares([
      { tier: 0, weight: 3 },
      { tier: 0, weight: 1 },
      { tier: 1, weight: 5 },
      { tier: 2, weight: 0 },
    ]);
    expect(shares).toEqual([75, 25, 100, 0]);
  });
});
