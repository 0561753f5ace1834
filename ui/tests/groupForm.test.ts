import { describe, expect, it } from 'vitest';
import type { Schemas } from '@/api/client';
import {
  emptyForm,
  formFromGroup,
  parseParamOverrides,
  toPayload,
  validateGroupForm,
  validateHeaderRules,
  validateUpstreams,
  type GroupForm,
} from '@/utils/groupForm';

function valid(): GroupForm {
  return {
    ...emptyForm('standard', 'openai'),
    name: 'my-group_1',
    test_model: 'gpt-4.1-nano',
    upstreams: [
      { url: 'https://a.example/v1', weight: 3 },
      { url: 'http://127.0.0.1:9000', weight: 0 },
    ],
  };
}
const keys = (f: GroupForm) => validateGroupForm(f).map((e) => e.key);

describe('group form validation', () => {
  it('accepts a complete standard group', () => {
    expect(validateGroupForm(valid())).toEqual([]);
  });

  it('checks the name like the server', () => {
    expect(keys({ ...valid(), name: '' })).toContain('nameRequired');
    for (const bad of ['Upper', 'with space', 'dots.no', 'x'.repeat(101), 'émoji']) expect(keys({ ...valid(), name: bad })).toContain('nameFormat');
    expect(keys({ ...valid(), name: 'a'.repeat(100) })).toEqual([]);
  });

  it('needs a test model and a path-only validation endpoint for standard groups', () => {
    expect(keys({ ...valid(), test_model: '  ' })).toContain('testModelRequired');
    expect(keys({ ...valid(), validation_endpoint: 'https://x/v1/chat' })).toContain('endpointFormat');
    expect(keys({ ...valid(), validation_endpoint: 'v1/chat' })).toContain('endpointFormat');
    expect(keys({ ...valid(), validation_endpoint: '/v1/chat/completions' })).toEqual([]);
    // Gemini has no validation endpoint: whatever is typed there is ignored.
    expect(keys({ ...valid(), channel_type: 'gemini', validation_endpoint: 'junk' })).toEqual([]);
  });

  it('validates upstream URLs and weights', () => {
    expect(validateUpstreams([]).map((e) => e.key)).toEqual(['upstreamRequired']);
    expect(validateUpstreams([{ url: 'ftp://x', weight: 1 }]).map((e) => e.key)).toEqual(['upstreamUrlFormat']);
    expect(validateUpstreams([{ url: '', weight: 1 }]).map((e) => e.key)).toEqual(['upstreamUrlRequired']);
    expect(validateUpstreams([{ url: 'http://x', weight: 0 }]).map((e) => e.key)).toEqual(['upstreamPositiveWeight']);
    expect(validateUpstreams([{ url: 'http://x', weight: -1 }, { url: 'http://y', weight: 1 }]).map((e) => e.key)).toEqual(['upstreamWeight']);
    expect(validateUpstreams([{ url: 'http://x', weight: null }, { url: 'http://y', weight: 2 }])[0]).toMatchObject({ key: 'upstreamWeight', params: { n: 1 } });
  });

  it('refuses duplicate header names regardless of case and ignores blank rows', () => {
    expect(validateHeaderRules([{ key: '', value: '', action: 'set' }])).toEqual([]);
    expect(validateHeaderRules([{ key: ' ', value: 'v', action: 'set' }]).map((e) => e.key)).toEqual(['headerKeyRequired']);
    expect(
      validateHeaderRules([
        { key: 'X-Foo', value: '1', action: 'set' },
        { key: 'x-foo', value: '', action: 'remove' },
      ]).map((e) => e.key),
    ).toEqual(['headerDuplicate']);
    expect(validateHeaderRules([{ key: 'Bad Header', value: '', action: 'set' }]).map((e) => e.key)).toEqual(['headerKeyFormat']);
  });

  it('checks redirects, overrides and the param JSON', () => {
    expect(keys({ ...valid(), redirects: [{ from: 'a', to: '' }] })).toContain('redirectEmpty');
    expect(keys({ ...valid(), redirects: [{ from: 'a', to: 'b' }, { from: 'a', to: 'c' }] })).toContain('redirectDuplicate');
    expect(keys({ ...valid(), config: [{ key: '', value: 1 }] })).toContain('configKeyRequired');
    expect(keys({ ...valid(), config: [{ key: 'max_retries', value: 1 }, { key: 'max_retries', value: 2 }] })).toContain('configDuplicate');
    expect(keys({ ...valid(), config: [{ key: 'max_retries', value: null }] })).toContain('configValue');
    expect(keys({ ...valid(), param_overrides: '{"temperature": 0.5' })).toContain('paramsInvalidJson');
    expect(keys({ ...valid(), param_overrides: '[1,2]' })).toContain('paramsNotObject');
    expect(parseParamOverrides(' ')).toEqual({ value: null, error: null });
    expect(parseParamOverrides('{"a":1}').value).toEqual({ a: 1 });
  });

  it('checks the routing fields: model patterns, an integer priority, a weight of 0 to 1000', () => {
    expect(keys({ ...valid(), models: ['gpt-4o*', 'claude-?'], priority: -5, weight: 0 })).toEqual([]);
    expect(keys({ ...valid(), weight: 1000 })).toEqual([]);
    expect(keys({ ...valid(), models: ['  '] })).toContain('modelEmpty');
    expect(validateGroupForm({ ...valid(), models: ['m'.repeat(201)] })).toContainEqual({ field: 'models', key: 'modelLength', params: { max: 200 } });
    expect(keys({ ...valid(), models: ['m'.repeat(200)] })).toEqual([]);
    expect(keys({ ...valid(), priority: 1.5 })).toContain('priorityInteger');
    for (const weight of [-1, 1001, 2.5]) expect(keys({ ...valid(), weight })).toContain('routingWeight');
    // Aggregates are never candidates of the native routes: their routing fields are not checked.
    expect(validateGroupForm({ ...emptyForm('aggregate'), name: 'agg', weight: -1 })).toEqual([]);
  });

  it('does not ask aggregates for upstreams or a test model', () => {
    const agg = { ...emptyForm('aggregate'), name: 'agg' };
    expect(validateGroupForm(agg)).toEqual([]);
  });
});

describe('group form payload', () => {
  it('sends every field of a standard group, trimmed', () => {
    const f: GroupForm = {
      ...valid(),
      name: ' my-group_1 ',
      display_name: ' Mine ',
      proxy_keys: 'sk-a,\n sk-b ,,',
      sort: 4,
      validation_endpoint: ' /v1/chat/completions ',
      config: [
        { key: 'max_retries', value: 5 },
        { key: 'enable_request_body_logging', value: true },
      ],
      header_rules: [
        { key: ' X-Api ', value: '${API_KEY}', action: 'set' },
        { key: 'X-Drop', value: 'ignored', action: 'remove' },
        { key: '', value: '', action: 'set' },
      ],
      redirects: [{ from: ' gpt-4 ', to: ' gpt-4.1 ' }],
      model_redirect_strict: true,
      param_overrides: '{"temperature":0.2}',
      models: [' gpt-4o* ', 'claude-3-haiku', 'gpt-4o*', ''],
      priority: -2,
      weight: 7,
    };
    expect(toPayload(f)).toEqual({
      name: 'my-group_1',
      display_name: 'Mine',
      description: '',
      group_type: 'standard',
      channel_type: 'openai',
      sort: 4,
      proxy_keys: 'sk-a,sk-b',
      config: { max_retries: 5, enable_request_body_logging: true },
      test_model: 'gpt-4.1-nano',
      validation_endpoint: '/v1/chat/completions',
      upstreams: [
        { url: 'https://a.example/v1', weight: 3 },
        { url: 'http://127.0.0.1:9000', weight: 0 },
      ],
      header_rules: [
        { key: 'X-Api', value: '${API_KEY}', action: 'set' },
        { key: 'X-Drop', value: '', action: 'remove' },
      ],
      model_redirect_rules: { 'gpt-4': 'gpt-4.1' },
      model_redirect_strict: true,
      param_overrides: { temperature: 0.2 },
      models: ['gpt-4o*', 'claude-3-haiku'],
      priority: -2,
      weight: 7,
    });
  });

  it('sends the routing defaults when priority or weight was cleared', () => {
    const p = toPayload({ ...valid(), priority: null, weight: null });
    expect(p).toMatchObject({ models: [], priority: 0, weight: 1 });
  });

  it('clears params with an empty object and drops the endpoint for gemini', () => {
    const p = toPayload({ ...valid(), channel_type: 'gemini', validation_endpoint: '/x', param_overrides: '' });
    expect(p.param_overrides).toEqual({});
    expect(p.validation_endpoint).toBe('');
  });

  it('sends only aggregate fields for aggregates', () => {
    const p = toPayload({ ...emptyForm('aggregate', 'anthropic'), name: 'agg', description: ' d ' });
    expect(Object.keys(p).sort()).toEqual(['channel_type', 'config', 'description', 'display_name', 'group_type', 'name', 'proxy_keys', 'sort']);
    expect(p).toMatchObject({ group_type: 'aggregate', channel_type: 'anthropic', description: 'd' });
  });

  it('round-trips a group from the API', () => {
    const g: Schemas['Group'] = {
      id: 1,
      name: 'g',
      endpoint: 'http://h/proxy/g',
      display_name: 'G',
      description: '',
      group_type: 'standard',
      upstreams: [{ url: 'http://u', weight: 1 }],
      channel_type: 'anthropic',
      sort: 2,
      test_model: 'claude',
      validation_endpoint: '',
      param_overrides: { top_p: 1 },
      model_redirect_rules: { a: 'b' },
      model_redirect_strict: false,
      config: { max_retries: 2 },
      header_rules: [{ key: 'X-A', value: '1', action: 'set' }],
      proxy_keys: 'sk-1',
      models: ['claude-*'],
      priority: 3,
      weight: 5,
      last_validated_at: null,
      created_at: '2025-01-01T00:00:00Z',
      updated_at: '2025-01-01T00:00:00Z',
    };
    const f = formFromGroup(g);
    expect(f.redirects).toEqual([{ from: 'a', to: 'b' }]);
    expect(f.config).toEqual([{ key: 'max_retries', value: 2 }]);
    expect(JSON.parse(f.param_overrides)).toEqual({ top_p: 1 });
    expect(f).toMatchObject({ models: ['claude-*'], priority: 3, weight: 5 });
    f.models.push('changed');
    expect(g.models).toEqual(['claude-*']);
    const p = toPayload(f);
    expect(p).toMatchObject({ name: 'g', channel_type: 'anthropic', upstreams: g.upstreams, header_rules: g.header_rules, model_redirect_rules: g.model_redirect_rules, config: g.config, param_overrides: g.param_overrides, priority: 3, weight: 5 });
  });
});
