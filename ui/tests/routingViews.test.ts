import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { defineComponent, nextTick } from 'vue';
import { createMemoryHistory, createRouter, type Router } from 'vue-router';
import { ApiError } from '@/api/client';
import { CONFIG_OPTIONS, makeGroup } from './fixtures';
import { flush, mountWithProviders } from './helpers';

const mocks = vi.hoisted(() => ({
  updateGroup: vi.fn(),
  createGroup: vi.fn(),
  discoverModels: vi.fn(),
  listGroups: vi.fn(),
  listAccessKeys: vi.fn(),
  inspectRoute: vi.fn(),
}));

vi.mock('@/api', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api')>();
  return { ...actual, api: mocks };
});

import GroupFormModal from '@/components/keys/GroupFormModal.vue';
import ModelsView from '@/views/ModelsView.vue';
import RouteInspectorView from '@/views/RouteInspectorView.vue';

function q<T extends Element = HTMLInputElement>(sel: string): T {
  const el = document.body.querySelector(sel);
  if (!el) throw new Error(`no element ${sel}`);
  return el as T;
}
const all = (sel: string) => [...document.body.querySelectorAll(sel)];
const text = (sel = 'body') => document.body.querySelector(sel)?.textContent ?? '';

function testRouter(): Router {
  const Blank = defineComponent({ render: () => null });
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', component: Blank },
      { path: '/keys', name: 'keys', component: Blank },
      { path: '/models', name: 'models', component: Blank },
      { path: '/route-inspector', name: 'routeInspector', component: Blank },
    ],
  });
}

beforeEach(() => {
  Object.values(mocks).forEach((m) => m.mockReset());
});
afterEach(() => {
  document.body.innerHTML = '';
});

const MAIN = makeGroup({ id: 7, name: 'main', models: ['gpt-4o*', 'mine'], upstreams: [{ url: 'https://up.example', weight: 1 }] });

describe('GroupFormModal: discover models', () => {
  const props = { show: true, createType: 'standard', channelTypes: ['openai'], configOptions: CONFIG_OPTIONS };

  it('lists the upstream models all checked; Apply merges the checked ones into the models', async () => {
    mocks.discoverModels.mockResolvedValue({ models: ['gpt-4o', 'gpt-4o-mini', 'mine', 'o3-mini'] });
    mocks.updateGroup.mockResolvedValue({ message: 'ok', data: MAIN });
    const w = mountWithProviders(GroupFormModal, { ...props, group: MAIN });
    await flush();
    q<HTMLButtonElement>('[data-test=group-models-discover]').click();
    await flush();
    expect(mocks.discoverModels).toHaveBeenCalledWith(7);
    const items = all('[data-test=discover-item]');
    expect(items.map((i) => i.getAttribute('data-model'))).toEqual(['gpt-4o', 'gpt-4o-mini', 'mine', 'o3-mini']);
    expect(all('[data-test=discover-item].n-checkbox--checked')).toHaveLength(4);
    expect(text('[data-test=discover-count]')).toContain('4 of 4 selected');
    // "mine" is in the form already.
    expect(text('[data-test=discover-list]')).toContain('already listed');
    // Uncheck o3-mini.
    (items[3] as HTMLElement).click();
    await flush();
    expect(text('[data-test=discover-count]')).toContain('3 of 4 selected');
    q<HTMLButtonElement>('[data-test=discover-apply]').click();
    await flush();
    expect(text('[data-test=group-models-select]')).toContain('gpt-4o-mini');
    expect(text('[data-test=group-models-select]')).not.toContain('o3-mini');
    q<HTMLButtonElement>('[data-test=group-form-submit]').click();
    await flush();
    expect(mocks.updateGroup.mock.calls[0]![1].models).toEqual(['gpt-4o*', 'mine', 'gpt-4o', 'gpt-4o-mini']);
    w.unmount();
  });

  it('select none, then select all within a filter', async () => {
    mocks.discoverModels.mockResolvedValue({ models: Array.from({ length: 10 }, (_, i) => `model-${i}`).concat(['other']) });
    const w = mountWithProviders(GroupFormModal, { ...props, group: MAIN });
    await flush();
    q<HTMLButtonElement>('[data-test=group-models-discover]').click();
    await flush();
    q<HTMLButtonElement>('[data-test=discover-none]').click();
    await flush();
    expect(text('[data-test=discover-count]')).toContain('0 of 11 selected');
    expect(q<HTMLButtonElement>('[data-test=discover-apply]').disabled).toBe(true);
    const filter = q<HTMLInputElement>('[data-test=discover-filter]');
    filter.value = 'oth';
    filter.dispatchEvent(new Event('input'));
    await nextTick();
    expect(all('[data-test=discover-item]')).toHaveLength(1);
    q<HTMLButtonElement>('[data-test=discover-all]').click();
    await flush();
    expect(text('[data-test=discover-count]')).toContain('1 of 11 selected');
    w.unmount();
  });

  it("shows the server's message when discovery fails, and retries", async () => {
    mocks.discoverModels.mockRejectedValueOnce(new ApiError(502, 'UPSTREAM_ERROR', 'upstream answered 401: invalid key'));
    const w = mountWithProviders(GroupFormModal, { ...props, group: MAIN });
    await flush();
    q<HTMLButtonElement>('[data-test=group-models-discover]').click();
    await flush();
    expect(text('[data-test=discover-error]')).toContain('upstream answered 401: invalid key');
    expect(q<HTMLButtonElement>('[data-test=discover-apply]').disabled).toBe(true);
    mocks.discoverModels.mockResolvedValueOnce({ models: ['gpt-4o'] });
    q<HTMLButtonElement>('[data-test=discover-retry]').click();
    await flush();
    expect(document.body.querySelector('[data-test=discover-error]')).toBeNull();
    expect(all('[data-test=discover-item]')).toHaveLength(1);
    w.unmount();
  });

  it('does not start when the models label is clicked', async () => {
    mocks.discoverModels.mockResolvedValue({ models: [] });
    const w = mountWithProviders(GroupFormModal, { ...props, group: MAIN });
    await flush();
    q<HTMLElement>('[data-test=group-routing] label').click();
    await flush();
    expect(mocks.discoverModels).not.toHaveBeenCalled();
    w.unmount();
  });

  it('is disabled while the group is being created', async () => {
    const w = mountWithProviders(GroupFormModal, { ...props, group: null });
    await flush();
    expect(q<HTMLButtonElement>('[data-test=group-models-discover]').disabled).toBe(true);
    expect(mocks.discoverModels).not.toHaveBeenCalled();
    w.unmount();
  });
});

describe('ModelsView', () => {
  it('lists every routable model with its groups; a model opens the inspector', async () => {
    mocks.listGroups.mockResolvedValue([
      MAIN,
      makeGroup({ id: 8, name: 'claude', channel_type: 'anthropic', models: ['claude-*'], model_redirect_rules: { fast: 'claude-3-5-haiku' }, priority: 2, weight: 4 }),
      makeGroup({ id: 9, name: 'unrouted' }),
    ]);
    const router = testRouter();
    await router.push('/models');
    const w = mountWithProviders(ModelsView, {}, [router]);
    await flush(5);
    const rows = all('[data-test=model-row]');
    expect(rows.map((r) => r.getAttribute('data-model'))).toEqual(['claude-*', 'fast', 'gpt-4o*', 'mine']);
    const fast = rows[1]!.textContent ?? '';
    expect(fast).toContain('claude');
    expect(fast).toContain('anthropic');
    expect(fast).toContain('priority 2 · weight 4');
    expect(fast).toContain('alias → claude-3-5-haiku');
    expect(text('[data-test=models-summary]')).toContain('4 models and patterns from 2 groups');
    expect(text()).not.toContain('unrouted');
    (rows[1]!.querySelector('[data-test=model-link]') as HTMLElement).click();
    await flush();
    expect(router.currentRoute.value.name).toBe('routeInspector');
    expect(router.currentRoute.value.query).toEqual({ model: 'fast', protocol: 'anthropic' });
    w.unmount();
  });
});

describe('RouteInspectorView', () => {
  const inspection = {
    allowed: true,
    candidates: [
      { group_id: 7, name: 'main', tier: 0, priority: 1, weight: 3, active_keys: 10, cooling_keys: 2 },
      { group_id: 10, name: 'second', tier: 0, priority: 1, weight: 1, active_keys: 1, cooling_keys: 0 },
    ],
    excluded: [
      { group_id: 8, name: 'claude', reason: 'its channel (anthropic) does not serve this protocol' },
      { group_id: 11, name: 'odd', reason: 'something new' },
    ],
  };

  it('inspects what the query asks for and shows the candidates and the excluded groups', async () => {
    mocks.listAccessKeys.mockResolvedValue([
      { id: 4, name: 'ci', key: 'sk-gl-AbCd…wxyz', status: 'active', filters: { groups: [], models: [], protocols: [] }, expires_at: null, allowed_ips: [], created_at: '', last_used_at: null, request_count: 0 },
    ]);
    mocks.listGroups.mockResolvedValue([MAIN]);
    mocks.inspectRoute.mockResolvedValue(inspection);
    const router = testRouter();
    await router.push('/route-inspector?model=gpt-4o&protocol=openai&key=4');
    const w = mountWithProviders(RouteInspectorView, {}, [router]);
    await flush(5);
    expect(mocks.inspectRoute).toHaveBeenCalledWith({ protocol: 'openai', model: 'gpt-4o', access_key_id: 4 });
    expect(text('[data-test=route-verdict]')).toContain('Allowed');
    expect(text('[data-test=route-verdict]')).toContain('tried first: main, second');
    expect(text('[data-test=route-verdict]')).toContain('ci');
    const candidates = all('[data-test=route-candidate]');
    expect(candidates.map((r) => r.getAttribute('data-name'))).toEqual(['main', 'second']);
    expect(candidates[0]!.textContent).toContain('75%');
    const excluded = all('[data-test=route-excluded]');
    expect(excluded[0]!.textContent).toContain('Its channel (anthropic) does not serve this protocol');
    expect(excluded[1]!.textContent).toContain('something new');
    w.unmount();
  });

  it('asks for a model, sends no key for the global proxy key, and shows a refusal', async () => {
    mocks.listAccessKeys.mockResolvedValue([]);
    mocks.listGroups.mockResolvedValue([]);
    mocks.inspectRoute.mockResolvedValue({ allowed: false, reason: "the access key may not use model 'o3'", candidates: [], excluded: [] });
    const router = testRouter();
    await router.push('/route-inspector');
    const w = mountWithProviders(RouteInspectorView, {}, [router]);
    await flush(5);
    q<HTMLButtonElement>('[data-test=inspect-submit]').click();
    await flush();
    expect(text('[data-test=inspect-form]')).toContain('Enter a model');
    expect(mocks.inspectRoute).not.toHaveBeenCalled();
    const input = q<HTMLInputElement>('[data-test=inspect-model]');
    input.value = 'o3';
    input.dispatchEvent(new Event('input'));
    await nextTick();
    q<HTMLButtonElement>('[data-test=inspect-submit]').click();
    await flush(5);
    expect(mocks.inspectRoute).toHaveBeenCalledWith({ protocol: 'openai', model: 'o3' });
    expect(text('[data-test=route-verdict]')).toContain('Refused');
    expect(text('[data-test=route-verdict]')).toContain('The access key may not use model o3');
    expect(router.currentRoute.value.query).toEqual({ model: 'o3', protocol: 'openai', key: 'global' });
    w.unmount();
  });

  it('shows an API error', async () => {
    mocks.listAccessKeys.mockResolvedValue([]);
    mocks.listGroups.mockResolvedValue([]);
    mocks.inspectRoute.mockRejectedValue(new ApiError(404, 'NOT_FOUND', 'Resource not found'));
    const router = testRouter();
    await router.push('/route-inspector?model=x&key=99');
    const w = mountWithProviders(RouteInspectorView, {}, [router]);
    await flush(5);
    expect(text('[data-test=inspect-error]')).toContain('Resource not found');
    w.unmount();
  });
});
