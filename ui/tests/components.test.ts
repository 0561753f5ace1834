import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { nextTick } from 'vue';
import { ApiError } from '@/api/client';
import { CATEGORIES, CONFIG_OPTIONS } from './fixtures';
import { flush, mountWithProviders } from './helpers';

const mocks = vi.hoisted(() => ({
  createGroup: vi.fn(),
  updateGroup: vi.fn(),
  getSettings: vi.fn(),
  updateSettings: vi.fn(),
}));

vi.mock('@/api', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api')>();
  return { ...actual, api: mocks };
});

import GroupFormModal from '@/components/keys/GroupFormModal.vue';
import SettingsView from '@/views/SettingsView.vue';

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
function textOf(sel: string) {
  return document.body.querySelector(sel)?.textContent ?? '';
}

beforeEach(() => {
  Object.values(mocks).forEach((m) => m.mockReset());
});
afterEach(() => {
  document.body.innerHTML = '';
});

describe('GroupFormModal', () => {
  const props = { show: true, group: null, createType: 'standard', channelTypes: ['openai', 'gemini', 'anthropic'], configOptions: CONFIG_OPTIONS };

  it('blocks an invalid form and shows the reasons without calling the API', async () => {
    const w = mountWithProviders(GroupFormModal, props);
    await flush();
    await type('[data-test=group-name] ', 'Bad Name');
    q<HTMLButtonElement>('[data-test=group-form-submit]').click();
    await flush();
    const text = textOf('[data-test=group-form]');
    expect(text).toContain('Only lowercase letters, digits, _ and -');
    expect(text).toContain('Enter the model used to test keys');
    expect(text).toContain('Upstream 1: enter a URL');
    expect(mocks.createGroup).not.toHaveBeenCalled();
    w.unmount();
  });

  it('shows the per-channel test-model placeholder and hides the endpoint for gemini', async () => {
    const w = mountWithProviders(GroupFormModal, props);
    await flush();
    expect(q('[data-test=group-test-model]').getAttribute('placeholder')).toBe('gpt-4.1-nano');
    expect(textOf('[data-test=group-form]')).toContain('Validation endpoint');
    w.unmount();
    const g = mountWithProviders(GroupFormModal, { ...props, channelTypes: ['gemini'] });
    await flush();
    expect(q('[data-test=group-test-model]').getAttribute('placeholder')).toBe('gemini-2.0-flash-lite');
    expect(textOf('[data-test=group-form]')).not.toContain('Validation endpoint');
    g.unmount();
  });

  it('creates a group with the typed fields and a generated proxy key', async () => {
    mocks.createGroup.mockResolvedValue({ message: 'ok', data: { id: 9, name: 'good' } });
    const w = mountWithProviders(GroupFormModal, props);
    await flush();
    await type('[data-test=group-name]', 'good');
    await type('[data-test=group-test-model]', 'gpt-4.1-nano');
    await type('[data-test=upstream-url-0]', 'http://127.0.0.1:9999');
    q<HTMLButtonElement>('[data-test=group-proxy-keys-generate]').click();
    await flush();
    q<HTMLButtonElement>('[data-test=group-form-submit]').click();
    await flush();
    expect(mocks.createGroup).toHaveBeenCalledTimes(1);
    const body = mocks.createGroup.mock.calls[0]![0];
    expect(body).toMatchObject({ name: 'good', group_type: 'standard', channel_type: 'openai', test_model: 'gpt-4.1-nano', upstreams: [{ url: 'http://127.0.0.1:9999', weight: 1 }] });
    expect(body.proxy_keys).toMatch(/^sk-[A-Za-z0-9]{48}$/);
    w.unmount();
  });

  it('sends the models, priority and weight of the native routes', async () => {
    mocks.createGroup.mockResolvedValue({ message: 'ok', data: { id: 9, name: 'routed' } });
    const w = mountWithProviders(GroupFormModal, props);
    await flush();
    await type('[data-test=group-name]', 'routed');
    expect(textOf('[data-test=group-routing]')).toContain('reachable only through /proxy/routed');
    await type('[data-test=group-test-model]', 'gpt-4.1-nano');
    await type('[data-test=upstream-url-0]', 'http://127.0.0.1:9999');
    await type('[data-test=group-models]', 'gpt-4o*, gpt-4.1-nano');
    q('[data-test=group-models]').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    await flush();
    await type('[data-test=group-priority]', '2');
    q('[data-test=group-priority]').dispatchEvent(new FocusEvent('blur'));
    await type('[data-test=group-weight]', '5');
    q('[data-test=group-weight]').dispatchEvent(new FocusEvent('blur'));
    await flush();
    q<HTMLButtonElement>('[data-test=group-form-submit]').click();
    await flush();
    expect(mocks.createGroup.mock.calls[0]![0]).toMatchObject({ name: 'routed', models: ['gpt-4o*', 'gpt-4.1-nano'], priority: 2, weight: 5 });
    w.unmount();
  });

  it('shows the server message when the API refuses', async () => {
    mocks.createGroup.mockRejectedValue(new ApiError(409, 'DUPLICATE_RESOURCE', 'Resource already exists'));
    const w = mountWithProviders(GroupFormModal, props);
    await flush();
    await type('[data-test=group-name]', 'dup');
    await type('[data-test=group-test-model]', 'm');
    await type('[data-test=upstream-url-0]', 'https://up.example');
    q<HTMLButtonElement>('[data-test=group-form-submit]').click();
    await flush();
    expect(textOf('[data-test=group-form-error]')).toContain('Resource already exists');
    w.unmount();
  });
});

describe('SettingsView', () => {
  it('generates inputs from the categories and saves only changed values', async () => {
    mocks.getSettings.mockResolvedValue(CATEGORIES);
    mocks.updateSettings.mockResolvedValue({ message: 'Settings updated', data: undefined });
    const w = mountWithProviders(SettingsView);
    await flush(5);
    const text = document.body.textContent ?? '';
    expect(text).toContain('Basic');
    expect(text).toContain('Request');
    // int → number input, bool → switch, string → text input
    expect(q('[data-test=setting-input-request_timeout]').getAttribute('type')).toBe('text');
    expect(document.body.querySelector('[data-test=setting-enable_request_body_logging] .n-switch')).not.toBeNull();
    expect(document.body.querySelector('[data-test=setting-input-proxy_keys-generate]')).not.toBeNull();

    await type('[data-test=setting-input-proxy_url]', 'http://proxy:8080');
    q<HTMLButtonElement>('[data-test=settings-save]').click();
    await flush(5);
    expect(mocks.updateSettings).toHaveBeenCalledWith({ proxy_url: 'http://proxy:8080' });
    w.unmount();
  });

  it('shows the 400 message of a refused value', async () => {
    mocks.getSettings.mockResolvedValue(CATEGORIES);
    mocks.updateSettings.mockRejectedValue(new ApiError(400, 'VALIDATION_FAILED', 'failover_status_codes: invalid range 5-1'));
    const w = mountWithProviders(SettingsView);
    await flush(5);
    await type('[data-test=setting-input-proxy_url]', 'x');
    q<HTMLButtonElement>('[data-test=settings-save]').click();
    await flush(5);
    expect(textOf('[data-test=settings-error]')).toContain('failover_status_codes: invalid range 5-1');
    w.unmount();
  });

  it('does not send an empty required value', async () => {
    mocks.getSettings.mockResolvedValue(CATEGORIES);
    const w = mountWithProviders(SettingsView);
    await flush(5);
    const input = q<HTMLInputElement>('[data-test=setting-input-app_url]');
    input.value = '';
    input.dispatchEvent(new Event('input'));
    await flush();
    q<HTMLButtonElement>('[data-test=settings-save]').click();
    await flush(5);
    expect(mocks.updateSettings).not.toHaveBeenCalled();
    expect(textOf('[data-test=setting-app_url]')).toContain('Required');
    w.unmount();
  });
});
