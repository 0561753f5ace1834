// The group form's model, its validation, and its conversion to and from the API's shapes.
// Pure functions: the form component and the unit tests share them.

import type { Schemas } from '@/api/client';

export type ChannelType = Schemas['ChannelType'];
export type GroupType = Schemas['GroupType'];
export type Group = Schemas['Group'];
export type ConfigValue = number | boolean | string | null;

export interface UpstreamRow {
  url: string;
  weight: number | null;
}
export interface ConfigRow {
  key: string;
  value: ConfigValue;
}
export interface HeaderRow {
  key: string;
  value: string;
  action: 'set' | 'remove';
}
export interface RedirectRow {
  from: string;
  to: string;
}

export interface GroupForm {
  group_type: GroupType;
  name: string;
  display_name: string;
  description: string;
  channel_type: ChannelType;
  sort: number | null;
  test_model: string;
  validation_endpoint: string;
  proxy_keys: string;
  upstreams: UpstreamRow[];
  config: ConfigRow[];
  header_rules: HeaderRow[];
  redirects: RedirectRow[];
  model_redirect_strict: boolean;
  /** JSON text of an object (empty = none). */
  param_overrides: string;
  /** Models served on the native routes: names or glob patterns (empty = only `/proxy/{name}`). */
  models: string[];
  /** Routing tier on the native routes: lower is tried first. */
  priority: number | null;
  /** Share within the tier on the native routes, 0–1000. */
  weight: number | null;
}

/** Limits of the server (`master/src/service/groups.rs`). */
export const MAX_MODEL_CHARS = 200;
export const MAX_ROUTING_WEIGHT = 1000;

export const TEST_MODEL_PLACEHOLDER: Record<ChannelType, string> = {
  openai: 'gpt-4.1-nano',
  'openai-response': 'gpt-4.1-nano',
  gemini: 'gemini-2.0-flash-lite',
  anthropic: 'claude-3-haiku-20240307',
};

export const DEFAULT_VALIDATION_ENDPOINT: Record<ChannelType, string> = {
  openai: '/v1/chat/completions',
  'openai-response': '/v1/responses',
  gemini: '',
  anthropic: '/v1/messages',
};

export const UPSTREAM_PLACEHOLDER: Record<ChannelType, string> = {
  openai: 'https://api.openai.com',
  'openai-response': 'https://api.openai.com',
  gemini: 'https://generativelanguage.googleapis.com',
  anthropic: 'https://api.anthropic.com',
};

/** Whether the channel has a configurable validation endpoint (Gemini has none). */
export function hasValidationEndpoint(channel: string): boolean {
  return channel !== 'gemini';
}

export function emptyForm(groupType: GroupType = 'standard', channel: ChannelType = 'openai'): GroupForm {
  return {
    group_type: groupType,
    name: '',
    display_name: '',
    description: '',
    channel_type: channel,
    sort: 1,
    test_model: '',
    validation_endpoint: '',
    proxy_keys: '',
    upstreams: groupType === 'standard' ? [{ url: '', weight: 1 }] : [],
    config: [],
    header_rules: [],
    redirects: [],
    model_redirect_strict: false,
    param_overrides: '',
    models: [],
    priority: 0,
    weight: 1,
  };
}

export function formFromGroup(g: Group): GroupForm {
  const params = g.param_overrides && Object.keys(g.param_overrides).length ? JSON.stringify(g.param_overrides, null, 2) : '';
  return {
    group_type: g.group_type,
    name: g.name,
    display_name: g.display_name,
    description: g.description,
    channel_type: g.channel_type,
    sort: g.sort,
    test_model: g.test_model === '-' ? '' : g.test_model,
    validation_endpoint: g.validation_endpoint,
    proxy_keys: g.proxy_keys,
    upstreams: (g.upstreams ?? []).map((u) => ({ url: u.url, weight: u.weight })),
    config: Object.entries(g.config ?? {})
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([key, value]) => ({ key, value: value as ConfigValue })),
    header_rules: (g.header_rules ?? []).map((h) => ({ key: h.key, value: h.value, action: h.action })),
    redirects: Object.entries(g.model_redirect_rules ?? {}).map(([from, to]) => ({ from, to })),
    model_redirect_strict: g.model_redirect_strict,
    param_overrides: params,
    models: [...(g.models ?? [])],
    priority: g.priority,
    weight: g.weight,
  };
}

/** A validation problem: the field, an i18n key under `groupForm.errors`, and its parameters. */
export interface FormError {
  field: string;
  key: string;
  params?: Record<string, string | number>;
}

export const GROUP_NAME_RE = /^[a-z0-9_-]{1,100}$/;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const URL_RE = /^https?:\/\/[^\s/?#]+[^\s]*$/i;

export function validateName(name: string): string | null {
  const n = name.trim();
  if (!n) return 'nameRequired';
  if (!GROUP_NAME_RE.test(n)) return 'nameFormat';
  return null;
}

export function validateEndpoint(p: string): string | null {
  const t = p.trim();
  if (!t) return null;
  if (!t.startsWith('/') || t.includes('://')) return 'endpointFormat';
  return null;
}

export function validateUpstreams(rows: UpstreamRow[]): FormError[] {
  const out: FormError[] = [];
  if (!rows.length) return [{ field: 'upstreams', key: 'upstreamRequired' }];
  rows.forEach((r, i) => {
    const url = r.url.trim();
    if (!url) out.push({ field: 'upstreams', key: 'upstreamUrlRequired', params: { n: i + 1 } });
    else if (!URL_RE.test(url)) out.push({ field: 'upstreams', key: 'upstreamUrlFormat', params: { n: i + 1 } });
    if (r.weight === null || !Number.isInteger(r.weight) || r.weight < 0) out.push({ field: 'upstreams', key: 'upstreamWeight', params: { n: i + 1 } });
  });
  if (!rows.some((r) => (r.weight ?? 0) > 0)) out.push({ field: 'upstreams', key: 'upstreamPositiveWeight' });
  return out;
}

export function validateConfigRows(rows: ConfigRow[]): FormError[] {
  const out: FormError[] = [];
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    if (!r.key) {
      out.push({ field: 'config', key: 'configKeyRequired', params: { n: i + 1 } });
      return;
    }
    if (seen.has(r.key)) out.push({ field: 'config', key: 'configDuplicate', params: { key: r.key } });
    seen.add(r.key);
    if (r.value === null || r.value === undefined || (typeof r.value === 'number' && (!Number.isInteger(r.value) || r.value < 0))) {
      out.push({ field: 'config', key: 'configValue', params: { key: r.key } });
    }
  });
  return out;
}

export function validateHeaderRules(rows: HeaderRow[]): FormError[] {
  const out: FormError[] = [];
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const key = r.key.trim();
    if (!key) {
      if (r.value.trim()) out.push({ field: 'header_rules', key: 'headerKeyRequired', params: { n: i + 1 } });
      return;
    }
    if (!HEADER_NAME_RE.test(key)) {
      out.push({ field: 'header_rules', key: 'headerKeyFormat', params: { key } });
      return;
    }
    const lower = key.toLowerCase();
    if (seen.has(lower)) out.push({ field: 'header_rules', key: 'headerDuplicate', params: { key } });
    seen.add(lower);
  });
  return out;
}

export function validateRedirects(rows: RedirectRow[]): FormError[] {
  const out: FormError[] = [];
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const from = r.from.trim();
    if (!from || !r.to.trim()) {
      out.push({ field: 'redirects', key: 'redirectEmpty', params: { n: i + 1 } });
      return;
    }
    if (seen.has(from)) out.push({ field: 'redirects', key: 'redirectDuplicate', params: { model: from } });
    seen.add(from);
  });
  return out;
}

/** Model names or patterns: each non-empty and at most 200 characters. */
export function validateModels(models: string[]): FormError[] {
  const out: FormError[] = [];
  for (const m of models) {
    const t = m.trim();
    if (!t) out.push({ field: 'models', key: 'modelEmpty' });
    else if ([...t].length > MAX_MODEL_CHARS) out.push({ field: 'models', key: 'modelLength', params: { max: MAX_MODEL_CHARS } });
  }
  return out;
}

/** Trimmed, blanks and duplicates dropped, order kept (as the server stores model lists). */
export function cleanList(list: string[]): string[] {
  const out: string[] = [];
  for (const v of list) {
    const t = v.trim();
    if (t && !out.includes(t)) out.push(t);
  }
  return out;
}

/** Parses the param-overrides text: `null` for empty, an object, or an error key. */
export function parseParamOverrides(text: string): { value: Record<string, unknown> | null; error: string | null } {
  const t = text.trim();
  if (!t) return { value: null, error: null };
  try {
    const v: unknown = JSON.parse(t);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return { value: null, error: 'paramsNotObject' };
    return { value: v as Record<string, unknown>, error: null };
  } catch {
    return { value: null, error: 'paramsInvalidJson' };
  }
}

/** Every problem of the form (empty when it can be submitted). */
export function validateGroupForm(f: GroupForm): FormError[] {
  const out: FormError[] = [];
  const name = validateName(f.name);
  if (name) out.push({ field: 'name', key: name });
  if (!f.channel_type) out.push({ field: 'channel_type', key: 'channelRequired' });
  if (f.sort !== null && !Number.isInteger(f.sort)) out.push({ field: 'sort', key: 'sortInteger' });
  if (f.group_type === 'standard') {
    if (!f.test_model.trim()) out.push({ field: 'test_model', key: 'testModelRequired' });
    if (hasValidationEndpoint(f.channel_type)) {
      const ep = validateEndpoint(f.validation_endpoint);
      if (ep) out.push({ field: 'validation_endpoint', key: ep });
    }
    out.push(...validateUpstreams(f.upstreams));
    out.push(...validateHeaderRules(f.header_rules));
    out.push(...validateRedirects(f.redirects));
    const p = parseParamOverrides(f.param_overrides);
    if (p.error) out.push({ field: 'param_overrides', key: p.error });
    out.push(...validateModels(f.models));
    if (f.priority !== null && !Number.isInteger(f.priority)) out.push({ field: 'priority', key: 'priorityInteger' });
    if (f.weight !== null && (!Number.isInteger(f.weight) || f.weight < 0 || f.weight > MAX_ROUTING_WEIGHT)) {
      out.push({ field: 'weight', key: 'routingWeight' });
    }
  }
  out.push(...validateConfigRows(f.config));
  return out;
}

/**
 * The create/update body for a valid form. Aggregates send only the fields they have (the native
 * routes choose among standard groups only, so models, priority and weight are theirs alone).
 */
export function toPayload(f: GroupForm): Schemas['GroupRequest'] {
  const base: Schemas['GroupRequest'] = {
    name: f.name.trim(),
    display_name: f.display_name.trim(),
    description: f.description.trim(),
    group_type: f.group_type,
    channel_type: f.channel_type,
    sort: f.sort ?? 0,
    proxy_keys: f.proxy_keys
      .split(/[,\n]/)
      .map((k) => k.trim())
      .filter(Boolean)
      .join(','),
    config: Object.fromEntries(f.config.filter((r) => r.key && r.value !== null).map((r) => [r.key, r.value])) as Schemas['GroupConfig'],
  };
  if (f.group_type === 'aggregate') return base;
  return {
    ...base,
    test_model: f.test_model.trim(),
    validation_endpoint: hasValidationEndpoint(f.channel_type) ? f.validation_endpoint.trim() : '',
    upstreams: f.upstreams.map((u) => ({ url: u.url.trim(), weight: u.weight ?? 0 })),
    header_rules: f.header_rules
      .filter((h) => h.key.trim())
      .map((h) => ({ key: h.key.trim(), value: h.action === 'remove' ? '' : h.value, action: h.action })),
    model_redirect_rules: Object.fromEntries(f.redirects.filter((r) => r.from.trim()).map((r) => [r.from.trim(), r.to.trim()])),
    model_redirect_strict: f.model_redirect_strict,
    param_overrides: parseParamOverrides(f.param_overrides).value ?? {},
    models: cleanList(f.models),
    priority: f.priority ?? 0,
    weight: f.weight ?? 1,
  };
}

/** The kind of input a config override needs, from the current global value's type. */
export function configValueKind(v: unknown): 'number' | 'boolean' | 'string' {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  return 'string';
}
