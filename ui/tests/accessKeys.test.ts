import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { nextTick } from 'vue';
import { ApiError, type Schemas } from '@/api/client';
import type { AccessKey } from '@/utils/accessKeyForm';
import { flush, mountWithProviders } from './helpers';

const mocks = vi.hoisted(() => ({
  listAccessKeys: vi.fn(),
  createAccessKey: vi.fn(),
  updateAccessKey: vi.fn(),
  deleteAccessKey: vi.fn(),
  listGroups: vi.fn(),
}));

vi.mock('@/api', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api')>();
  return { ...actual, api: mocks };
});

import AccessKeyFormModal from '@/components/accessKeys/AccessKeyFormModal.vue';
import AccessKeysView from '@/views/AccessKeysView.vue';

const WHOLE = 'sk-gl-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789wxyz';

function accessKey(over: Partial<AccessKey> = {}): AccessKey {
  return {
    id: 4,
    name: 'ci',
    key: 'sk-gl-AbCd…wxyz',
    status: 'active',
    filters: { groups: [2], models: ['gpt-4o*'], protocols: ['openai'] },
    expires_at: null,
    allowed_ips: [],
    created_at: '2030-01-01T00:00:00+00:00',
    last_used_at: null,
    request_count: 12,
    ...over,
  };
}
const GROUPS = [{ id: 2, name: 'main', display_name: 'Main' }] as Schemas['Group'][];

function q<T extends Element = HTMLInputElement>(sel: string): T {
  const el = document.body.querySelector(sel);
  if (!el) throw new Error(`no element ${sel}`);
  return el as T;
}
async function type(sel: string, value: string) {
  const el = q<HTMLInputElement>(sel);
  el.value = value;
  el.dispatchEvent(new Event('input'));
  await nextTick();
}
async function press(sel: string, key: string) {
  q(sel).dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
  await flush();
}
const text = (sel = 'body') => document.body.querySelector(sel)?.textContent ?? '';

beforeEach(() => {
  Object.values(mocks).forEach((m) => m.mockReset());
});
afterEach(() => {
  document.body.innerHTML = '';
});

describe('AccessKeyFormModal', () => {
  const props = { show: true, accessKey: null, groups: GROUPS };

  it('creates a key from the typed fields; tags come from Enter, commas and leaving the field', async () => {
    const created = accessKey({ key: WHOLE });
    mocks.createAccessKey.mockResolvedValue({ message: 'ok', data: created });
    const onCreated = vi.fn();
    const w = mountWithProviders(AccessKeyFormModal, { ...props, onCreated });
    await flush();
    await type('[data-test=access-key-name]', ' agent ');
    await type('[data-test=access-key-models]', 'gpt-4o*');
    await press('[data-test=access-key-models]', 'Enter');
    await type('[data-test=access-key-models]', 'claude-3-haiku, gemini-2.0-flash');
    await press('[data-test=access-key-models]', 'Enter');
    await type('[data-test=access-key-ips]', '127.0.0.1');
    // Leaving the field: the browser sends blur, then focusout (which Naive UI listens to).
    q('[data-test=access-key-ips]').dispatchEvent(new FocusEvent('blur'));
    q('[data-test=access-key-ips]').dispatchEvent(new FocusEvent('focusout', { bubbles: true }));
    await flush();
    expect(text('[data-test=access-key-models-select]')).toContain('claude-3-haiku');
    q<HTMLButtonElement>('[data-test=access-key-form-submit]').click();
    await flush();
    expect(mocks.createAccessKey).toHaveBeenCalledWith({
      name: 'agent',
      filters: { groups: [], models: ['gpt-4o*', 'claude-3-haiku', 'gemini-2.0-flash'], protocols: [] },
      allowed_ips: ['127.0.0.1'],
    });
    expect(onCreated).toHaveBeenCalledWith(created);
    w.unmount();
  });

  it('blocks an invalid form and says why, without calling the API', async () => {
    const w = mountWithProviders(AccessKeyFormModal, props);
    await flush();
    await type('[data-test=access-key-custom]', 'too short');
    await type('[data-test=access-key-ips]', 'not-an-ip');
    await press('[data-test=access-key-ips]', 'Enter');
    q<HTMLButtonElement>('[data-test=access-key-form-submit]').click();
    await flush();
    const form = text('[data-test=access-key-form]');
    expect(form).toContain('Enter a name');
    expect(form).toContain('A key has 16 to 4096 bytes');
    expect(form).toContain('A key may not contain spaces or control characters');
    expect(form).toContain('not-an-ip is neither an IP address nor a CIDR');
    expect(mocks.createAccessKey).not.toHaveBeenCalled();
    w.unmount();
  });

  it('shows the server message when the API refuses', async () => {
    mocks.createAccessKey.mockRejectedValue(new ApiError(409, 'DUPLICATE_RESOURCE', 'Resource already exists'));
    const w = mountWithProviders(AccessKeyFormModal, props);
    await flush();
    await type('[data-test=access-key-name]', 'dup');
    await type('[data-test=access-key-custom]', 'sk-custom-0123456789');
    q<HTMLButtonElement>('[data-test=access-key-form-submit]').click();
    await flush();
    expect(mocks.createAccessKey.mock.calls[0]![0]).toMatchObject({ name: 'dup', key: 'sk-custom-0123456789' });
    expect(text('[data-test=access-key-form-error]')).toContain('Resource already exists');
    expect(document.body.querySelector('[data-test=access-key-form]')).not.toBeNull();
    w.unmount();
  });

  it('edits every field but the key, and can remove a tag', async () => {
    const k = accessKey({ allowed_ips: ['10.0.0.0/8', '::1'] });
    mocks.updateAccessKey.mockResolvedValue({ message: 'ok', data: k });
    const onUpdated = vi.fn();
    const w = mountWithProviders(AccessKeyFormModal, { ...props, accessKey: k, onUpdated });
    await flush();
    expect(q('[data-test=access-key-name]').value).toBe('ci');
    expect(document.body.querySelector('[data-test=access-key-custom]')).toBeNull();
    expect(text('[data-test=access-key-form]')).toContain('Main (main)');
    // The close button of the first address tag.
    q('[data-test=access-key-ips-select] .n-base-close').dispatchEvent(new MouseEvent('click', { bubbles: true }));
    await flush();
    await type('[data-test=access-key-name]', 'ci-2');
    q<HTMLButtonElement>('[data-test=access-key-form-submit]').click();
    await flush();
    expect(mocks.updateAccessKey).toHaveBeenCalledWith(4, {
      name: 'ci-2',
      filters: { groups: [2], models: ['gpt-4o*'], protocols: ['openai'] },
      expires_at: null,
      allowed_ips: ['::1'],
    });
    expect(onUpdated).toHaveBeenCalledWith(k);
    w.unmount();
  });
});

describe('AccessKeysView', () => {
  beforeEach(() => {
    mocks.listGroups.mockResolvedValue(GROUPS);
  });

  it('lists keys masked, with their filters by group name', async () => {
    mocks.listAccessKeys.mockResolvedValue([accessKey(), accessKey({ id: 5, name: 'open', filters: { groups: [], models: [], protocols: [] }, status: 'disabled', expires_at: '2001-01-01T00:00:00Z' })]);
    const w = mountWithProviders(AccessKeysView);
    await flush(5);
    const rows = document.body.querySelectorAll('[data-test=access-key-row]');
    expect(rows).toHaveLength(2);
    expect(rows[0]!.textContent).toContain('sk-gl-AbCd…wxyz');
    expect(rows[0]!.textContent).toContain('Groups:main');
    expect(rows[0]!.textContent).toContain('Protocols:openai');
    expect(rows[1]!.textContent).toContain('No restriction');
    expect(rows[1]!.textContent).toContain('Expired');
    expect(rows[1]!.textContent).toContain('Disabled');
    w.unmount();
  });

  it('shows a created key whole once, copies it, and then only masked', async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(window, 'isSecureContext', { value: true, configurable: true });
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    mocks.listAccessKeys.mockResolvedValueOnce([]).mockResolvedValue([accessKey()]);
    mocks.createAccessKey.mockResolvedValue({ message: 'ok', data: accessKey({ key: WHOLE }) });
    const w = mountWithProviders(AccessKeysView);
    await flush(5);
    expect(text('[data-test=access-key-table]')).toContain('No access keys yet');
    q<HTMLButtonElement>('[data-test=access-key-create]').click();
    await flush();
    await type('[data-test=access-key-name]', 'ci');
    q<HTMLButtonElement>('[data-test=access-key-form-submit]').click();
    await flush(5);
    expect(q('[data-test=access-key-created-value]').value).toBe(WHOLE);
    expect(text('[data-test=access-key-created]')).toContain('This is the only time the whole key is shown');
    q<HTMLButtonElement>('[data-test=access-key-copy]').click();
    await flush();
    expect(writeText).toHaveBeenCalledWith(WHOLE);
    expect(text('[data-test=access-key-table]')).toContain('sk-gl-AbCd…wxyz');
    q<HTMLButtonElement>('[data-test=access-key-created-done]').click();
    await flush(5);
    expect(document.body.innerHTML).not.toContain(WHOLE);
    w.unmount();
  });

  it('disables a key with its switch and deletes one after confirmation', async () => {
    mocks.listAccessKeys.mockResolvedValue([accessKey()]);
    mocks.updateAccessKey.mockResolvedValue({ message: 'ok', data: accessKey({ status: 'disabled' }) });
    mocks.deleteAccessKey.mockResolvedValue({ message: 'Deleted', data: undefined });
    const w = mountWithProviders(AccessKeysView);
    await flush(5);
    q<HTMLElement>('[data-test=access-key-toggle]').click();
    await flush();
    expect(mocks.updateAccessKey).toHaveBeenCalledWith(4, { status: 'disabled' });
    expect(text('[data-test=access-key-row]')).toContain('Disabled');
    q<HTMLButtonElement>('[data-test=access-key-delete]').click();
    await flush();
    expect(mocks.deleteAccessKey).not.toHaveBeenCalled();
    expect(text('.n-dialog')).toContain('Delete ci?');
    const confirm = [...document.body.querySelectorAll<HTMLButtonElement>('.n-dialog button')].find((b) => b.textContent?.trim() === 'Delete');
    confirm!.click();
    await flush();
    expect(mocks.deleteAccessKey).toHaveBeenCalledWith(4);
    expect(document.body.querySelectorAll('[data-test=access-key-row]')).toHaveLength(0);
    w.unmount();
  });
});
