import { describe, expect, it } from 'vitest';
import {
  describeFilters,
  emptyAccessKeyForm,
  formFromAccessKey,
  isExpired,
  isIpOrCidr,
  toCreatePayload,
  toUpdatePayload,
  validateAccessKeyForm,
  type AccessKey,
  type AccessKeyForm,
} from '@/utils/accessKeyForm';

const NOW = Date.parse('2030-06-01T12:00:00Z');

function valid(): AccessKeyForm {
  return { ...emptyAccessKeyForm(), name: 'laptop' };
}
const keys = (f: AccessKeyForm, creating = true, originalExpiry: number | null = null) =>
  validateAccessKeyForm(f, { creating, now: NOW, originalExpiry }).map((e) => e.key);

const stored: AccessKey = {
  id: 4,
  name: 'ci',
  key: 'sk-gl-abcd…wxyz',
  status: 'active',
  filters: { groups: [2, 9], models: ['gpt-4o*'], protocols: ['openai', 'anthropic'] },
  expires_at: '2031-01-01T00:00:00+00:00',
  allowed_ips: ['10.0.0.0/8'],
  created_at: '2030-01-01T00:00:00+00:00',
  last_used_at: null,
  request_count: 0,
};

describe('access key form validation', () => {
  it('accepts a name alone', () => {
    expect(keys(valid())).toEqual([]);
  });

  it('needs a name of at most 255 characters', () => {
    expect(keys({ ...valid(), name: '  ' })).toEqual(['nameRequired']);
    expect(keys({ ...valid(), name: 'é'.repeat(255) })).toEqual([]);
    expect(keys({ ...valid(), name: 'x'.repeat(256) })).toEqual(['nameLength']);
  });

  it('checks a custom key like the server: 16 to 4096 bytes, no whitespace or control characters', () => {
    expect(keys({ ...valid(), key: 'sk-custom-0123456' })).toEqual([]);
    expect(keys({ ...valid(), key: 'short' })).toEqual(['keyLength']);
    // Bytes, not characters: 6 three-byte characters are 18 bytes.
    expect(keys({ ...valid(), key: '密钥密钥密钥' })).toEqual([]);
    expect(keys({ ...valid(), key: 'k'.repeat(4097) })).toEqual(['keyLength']);
    expect(keys({ ...valid(), key: 'sk-with a-space-inside' })).toEqual(['keyCharacters']);
    expect(keys({ ...valid(), key: 'sk-with-a-tab\tinside' })).toEqual(['keyCharacters']);
    expect(keys({ ...valid(), key: 'sk-with-a-nul\u0000inside' })).toEqual(['keyCharacters']);
    // Editing never sends a key, so it is not checked.
    expect(keys({ ...valid(), key: 'short' }, false)).toEqual([]);
  });

  it('checks model patterns and addresses', () => {
    expect(keys({ ...valid(), models: ['gpt-4o*', 'claude-?'] })).toEqual([]);
    expect(keys({ ...valid(), models: [''] })).toEqual(['modelEmpty']);
    expect(keys({ ...valid(), models: ['m'.repeat(201)] })).toEqual(['modelLength']);
    expect(keys({ ...valid(), allowed_ips: ['10.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32'] })).toEqual([]);
    const errs = validateAccessKeyForm({ ...valid(), allowed_ips: ['10.0.0.256', 'localhost'] }, { creating: true, now: NOW });
    expect(errs).toEqual([
      { field: 'allowed_ips', key: 'ipFormat', params: { ip: '10.0.0.256' } },
      { field: 'allowed_ips', key: 'ipFormat', params: { ip: 'localhost' } },
    ]);
  });

  it('wants a future expiry, except the one an edited key already has', () => {
    expect(keys({ ...valid(), expires_at: NOW + 1000 })).toEqual([]);
    expect(keys({ ...valid(), expires_at: NOW - 1000 })).toEqual(['expiryPast']);
    expect(keys({ ...valid(), expires_at: NOW - 1000 }, false, NOW - 1000)).toEqual([]);
    expect(keys({ ...valid(), expires_at: NOW - 2000 }, false, NOW - 1000)).toEqual(['expiryPast']);
  });
});

describe('addresses', () => {
  it('accepts IPv4 and IPv6 addresses and networks', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0/0', '192.168.1.0/24', '10.1.2.3/32', '::1', '::', 'fe80::1/64', '2001:db8::/128', '::ffff:10.0.0.1'])
      expect(isIpOrCidr(ok), ok).toBe(true);
  });

  it('refuses names, bad octets, bad prefixes and zones', () => {
    for (const bad of ['', 'localhost', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '10.0.0.0/33', '::1/129', '10.0.0.0/', '10.0.0.0/8/8', 'fe80::1%eth0', '1.2.3.4/x', 'gggg::1'])
      expect(isIpOrCidr(bad), bad).toBe(false);
  });
});

describe('access key payloads', () => {
  it('creates with trimmed, de-duplicated lists and omits what was left empty', () => {
    const f: AccessKeyForm = {
      ...valid(),
      name: ' agent ',
      groups: [3, 1, 3],
      models: [' gpt-4o* ', 'gpt-4o*', ''],
      protocols: ['gemini', 'openai'],
      allowed_ips: [' 127.0.0.1 ', ''],
    };
    expect(toCreatePayload(f)).toEqual({
      name: 'agent',
      filters: { groups: [3, 1], models: ['gpt-4o*'], protocols: ['openai', 'gemini'] },
      allowed_ips: ['127.0.0.1'],
    });
  });

  it('sends a custom key and an expiry only when given', () => {
    const p = toCreatePayload({ ...valid(), key: 'sk-mine-0123456789', expires_at: Date.parse('2031-02-03T04:05:06Z') });
    expect(p.key).toBe('sk-mine-0123456789');
    expect(p.expires_at).toBe('2031-02-03T04:05:06.000Z');
  });

  it('updates every editable field, with null clearing the expiry, and never the key or status', () => {
    const f = { ...formFromAccessKey(stored), key: 'ignored-on-edit-123', expires_at: null };
    const p = toUpdatePayload(f);
    expect(p).toEqual({
      name: 'ci',
      filters: { groups: [2, 9], models: ['gpt-4o*'], protocols: ['openai', 'anthropic'] },
      expires_at: null,
      allowed_ips: ['10.0.0.0/8'],
    });
    expect('key' in p || 'status' in p).toBe(false);
  });

  it('fills the form from a stored key without sharing its lists', () => {
    const f = formFromAccessKey(stored);
    expect(f).toEqual({
      name: 'ci',
      key: '',
      groups: [2, 9],
      models: ['gpt-4o*'],
      protocols: ['openai', 'anthropic'],
      expires_at: Date.parse('2031-01-01T00:00:00Z'),
      allowed_ips: ['10.0.0.0/8'],
    });
    f.groups.push(5);
    f.allowed_ips.push('::1');
    expect(stored.filters.groups).toEqual([2, 9]);
    expect(stored.allowed_ips).toEqual(['10.0.0.0/8']);
    expect(toUpdatePayload(formFromAccessKey(stored)).expires_at).toBe('2031-01-01T00:00:00.000Z');
  });
});

describe('access key display', () => {
  it('describes the filters, groups by name, leaving out empty ones', () => {
    const names = new Map([[2, 'main']]);
    expect(describeFilters(stored.filters, (id) => names.get(id))).toEqual([
      { kind: 'groups', items: ['main', '#9'] },
      { kind: 'models', items: ['gpt-4o*'] },
      { kind: 'protocols', items: ['openai', 'anthropic'] },
    ]);
    expect(describeFilters({ groups: [], models: [], protocols: [] }, () => undefined)).toEqual([]);
    expect(describeFilters({}, () => undefined)).toEqual([]);
  });

  it('knows an expired key', () => {
    expect(isExpired({ expires_at: null }, NOW)).toBe(false);
    expect(isExpired({ expires_at: '2030-06-01T11:59:59Z' }, NOW)).toBe(true);
    expect(isExpired({ expires_at: '2030-06-01T12:00:01+00:00' }, NOW)).toBe(false);
  });
});
