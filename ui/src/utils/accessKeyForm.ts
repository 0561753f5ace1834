// The access-key form's model, its validation, its conversion to and from the API's shapes, and
// the one-line descriptions the table shows. Pure functions: the form, the page and the unit tests
// share them. The server checks everything again; these checks only catch mistakes before a trip.

import type { Schemas } from '@/api/client';
import { cleanList, validateModels } from '@/utils/groupForm';

export type AccessKey = Schemas['AccessKey'];
export type AccessKeyFilters = Schemas['AccessKeyFilters'];
export type Protocol = Schemas['ChannelType'];

/** The protocols a key may be limited to, in the order the form offers them. */
export const PROTOCOLS: readonly Protocol[] = ['openai', 'openai-response', 'anthropic', 'gemini'];

/** Limits of the server (`master/src/service/access_keys.rs`). */
export const MAX_NAME_CHARS = 255;
export const MIN_KEY_BYTES = 16;
export const MAX_KEY_BYTES = 4096;

export interface AccessKeyForm {
  name: string;
  /** A custom key; empty lets the server generate one. Only used on create. */
  key: string;
  groups: number[];
  models: string[];
  protocols: Protocol[];
  /** Milliseconds since the epoch (the date picker's value); null: never expires. */
  expires_at: number | null;
  allowed_ips: string[];
}

export function emptyAccessKeyForm(): AccessKeyForm {
  return { name: '', key: '', groups: [], models: [], protocols: [], expires_at: null, allowed_ips: [] };
}

/** Parses an RFC 3339 time to milliseconds (null for null, empty or unparsable). */
export function parseTime(s: string | null | undefined): number | null {
  if (!s) return null;
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? null : ms;
}

export function formFromAccessKey(k: AccessKey): AccessKeyForm {
  return {
    name: k.name,
    key: '',
    groups: [...(k.filters.groups ?? [])],
    models: [...(k.filters.models ?? [])],
    protocols: [...(k.filters.protocols ?? [])],
    expires_at: parseTime(k.expires_at),
    allowed_ips: [...k.allowed_ips],
  };
}

/** A validation problem: the field, an i18n key under `accessKeys.errors`, and its parameters. */
export interface AccessKeyFormError {
  field: 'name' | 'key' | 'models' | 'expires_at' | 'allowed_ips';
  key: string;
  params?: Record<string, string | number>;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIpv6(s: string): boolean {
  if (!s.includes(':') || /[^0-9a-fA-F:.]/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

/** Whether `s` is an IP address (`10.0.0.1`, `::1`) or a network in CIDR form (`10.0.0.0/8`). */
export function isIpOrCidr(s: string): boolean {
  const [addr, prefix, ...rest] = s.trim().split('/');
  if (rest.length || !addr) return false;
  const v4 = IPV4_RE.test(addr);
  if (!v4 && !isIpv6(addr)) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (v4 ? 32 : 128);
}

/** The length of a string in UTF-8 bytes (the server's limit on keys). */
function utf8Bytes(s: string): number {
  return new TextEncoder().encode(s).length;
}

/**
 * Every problem of the form (empty when it can be submitted). `creating` checks the custom key;
 * `originalExpiry` is the stored expiry of an edited key, which may stay in the past.
 */
export function validateAccessKeyForm(
  f: AccessKeyForm,
  { creating, now = Date.now(), originalExpiry = null }: { creating: boolean; now?: number; originalExpiry?: number | null },
): AccessKeyFormError[] {
  const out: AccessKeyFormError[] = [];
  const name = f.name.trim();
  if (!name) out.push({ field: 'name', key: 'nameRequired' });
  else if ([...name].length > MAX_NAME_CHARS) out.push({ field: 'name', key: 'nameLength', params: { max: MAX_NAME_CHARS } });
  if (creating && f.key !== '') {
    const bytes = utf8Bytes(f.key);
    if (bytes < MIN_KEY_BYTES || bytes > MAX_KEY_BYTES) out.push({ field: 'key', key: 'keyLength', params: { min: MIN_KEY_BYTES, max: MAX_KEY_BYTES } });
    // Whitespace and control characters: the key travels in a header.
    if (/[\s\u0000-\u001f\u007f-\u009f]/.test(f.key)) out.push({ field: 'key', key: 'keyCharacters' });
  }
  for (const e of validateModels(f.models)) out.push({ ...e, field: 'models' });
  if (f.expires_at !== null && f.expires_at <= now && f.expires_at !== originalExpiry) out.push({ field: 'expires_at', key: 'expiryPast' });
  for (const ip of f.allowed_ips) {
    if (ip.trim() && !isIpOrCidr(ip)) out.push({ field: 'allowed_ips', key: 'ipFormat', params: { ip: ip.trim() } });
  }
  return out;
}

export function toFilters(f: AccessKeyForm): AccessKeyFilters {
  return {
    groups: [...new Set(f.groups)],
    models: cleanList(f.models),
    protocols: PROTOCOLS.filter((p) => f.protocols.includes(p)),
  };
}

/** An RFC 3339 time (UTC) from milliseconds, or null. */
export function toRfc3339(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The create body: the key only when one was typed, the expiry only when one was chosen. */
export function toCreatePayload(f: AccessKeyForm): Schemas['AccessKeyCreate'] {
  const body: Schemas['AccessKeyCreate'] = {
    name: f.name.trim(),
    filters: toFilters(f),
    allowed_ips: cleanList(f.allowed_ips),
  };
  if (f.key !== '') body.key = f.key;
  if (f.expires_at !== null) body.expires_at = toRfc3339(f.expires_at);
  return body;
}

/** The update body: every editable field, `expires_at: null` to clear the expiry. The key and
 * the status are not part of it (the key cannot change; the status has its own switch). */
export function toUpdatePayload(f: AccessKeyForm): Schemas['AccessKeyUpdate'] {
  return {
    name: f.name.trim(),
    filters: toFilters(f),
    expires_at: toRfc3339(f.expires_at),
    allowed_ips: cleanList(f.allowed_ips),
  };
}

/** Whether the key has expired at `now`. */
export function isExpired(k: Pick<AccessKey, 'expires_at'>, now = Date.now()): boolean {
  const ms = parseTime(k.expires_at);
  return ms !== null && ms <= now;
}

/** One restriction of a key's filters, for the table: what it limits and to which values. */
export interface FilterPart {
  kind: 'groups' | 'models' | 'protocols';
  items: string[];
}

/**
 * The key's restrictions, empty lists left out (an empty result: no restriction). Group ids are
 * shown by name; an id no longer known is shown as `#id`.
 */
export function describeFilters(f: AccessKeyFilters, groupName: (id: number) => string | undefined): FilterPart[] {
  const parts: FilterPart[] = [];
  if (f.groups?.length) parts.push({ kind: 'groups', items: f.groups.map((id) => groupName(id) ?? `#${id}`) });
  if (f.models?.length) parts.push({ kind: 'models', items: [...f.models] });
  if (f.protocols?.length) parts.push({ kind: 'protocols', items: [...f.protocols] });
  return parts;
}
