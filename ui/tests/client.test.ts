import { describe, expect, it, vi } from 'vitest';
import { ApiError, createClient, dispositionFilename, fillPath, queryString } from '@/api/client';
import { jsonResponse } from './helpers';

function setup(responder: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchMock = vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return responder(url, init);
  });
  const onUnauthorized = vi.fn();
  let token: string | null = 'admin-secret';
  const client = createClient({
    fetch: fetchMock as unknown as typeof fetch,
    getToken: () => token,
    getLanguage: () => 'ja-JP',
    onUnauthorized,
  });
  return { api: client.api, calls, onUnauthorized, setToken: (t: string | null) => (token = t) };
}

const header = (init: RequestInit, name: string) => new Headers(init.headers).get(name);

describe('api client', () => {
  it('sends the key as a Bearer token with the UI language and unwraps data', async () => {
    const { api, calls } = setup(() => jsonResponse({ code: 0, message: '成功', data: ['openai', 'gemini'] }));
    await expect(api.channelTypes()).resolves.toEqual(['openai', 'gemini']);
    expect(calls[0]!.url).toBe('/api/channel-types');
    expect(calls[0]!.init.method).toBe('GET');
    expect(header(calls[0]!.init, 'Authorization')).toBe('Bearer admin-secret');
    expect(header(calls[0]!.init, 'Accept-Language')).toBe('ja-JP');
  });

  it('builds queries without empty values and fills path parameters', async () => {
    const { api, calls } = setup(() => jsonResponse({ code: 0, message: 'ok', data: { items: [], pagination: { page: 2, page_size: 50, total_items: 0, total_pages: 0 } } }));
    await api.listKeys({ group_id: 7, status: undefined, key_value: 'sk a&b', page: 2, page_size: 50 });
    expect(calls[0]!.url).toBe('/api/keys?group_id=7&key_value=sk+a%26b&page=2&page_size=50');
    await api.groupStats(12);
    expect(calls[1]!.url).toBe('/api/groups/12/stats');
    await api.updateSubGroupWeight(3, 9, 250);
    expect(calls[2]!.url).toBe('/api/groups/3/sub-groups/9/weight');
    expect(calls[2]!.init.method).toBe('PUT');
    expect(JSON.parse(calls[2]!.init.body as string)).toEqual({ weight: 250 });
    expect(header(calls[2]!.init, 'Content-Type')).toBe('application/json');
  });

  it('returns the message of message-only answers', async () => {
    const { api } = setup(() => jsonResponse({ code: 0, message: '3 keys restored' }));
    const r = await api.restoreAllInvalid(4);
    expect(r.message).toBe('3 keys restored');
    expect(r.data).toBeUndefined();
  });

  it('turns the error envelope into an ApiError with the server message', async () => {
    const { api, onUnauthorized } = setup(() => jsonResponse({ code: 'VALIDATION_FAILED', message: 'request_timeout must be at least 1' }, 400));
    const err = await api.updateSettings({ request_timeout: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'VALIDATION_FAILED', message: 'request_timeout must be at least 1' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('reads non-envelope errors too', async () => {
    const { api } = setup(() => jsonResponse({ error: 'Not Found' }, 404));
    await expect(api.listGroups()).rejects.toMatchObject({ status: 404, message: 'Not Found' });
    const plain = setup(() => new Response('upstream exploded', { status: 502 }));
    await expect(plain.api.listGroups()).rejects.toMatchObject({ status: 502, message: 'upstream exploded' });
  });

  it('logs out on any 401 of an authenticated call', async () => {
    const { api, onUnauthorized } = setup(() => jsonResponse({ code: 'UNAUTHORIZED', message: 'Authentication failed' }, 401));
    await expect(api.dashboardStats()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('reports transport failures as ApiError with status 0', async () => {
    const { api } = setup(() => {
      throw new TypeError('Failed to fetch');
    });
    await expect(api.taskStatus()).rejects.toMatchObject({ status: 0, code: 'NETWORK_ERROR', message: 'Failed to fetch' });
  });

  it('logs in without a token and does not log out on a wrong key', async () => {
    const { api, calls, onUnauthorized, setToken } = setup((_, init) => {
      const body = JSON.parse(init.body as string) as { auth_key: string };
      return body.auth_key === 'right'
        ? jsonResponse({ success: true, message: 'Authentication successful' })
        : jsonResponse({ success: false, message: 'Authentication failed' }, 401);
    });
    setToken(null);
    await expect(api.login('right')).resolves.toEqual({ success: true, message: 'Authentication successful' });
    expect(header(calls[0]!.init, 'Authorization')).toBeNull();
    await expect(api.login('wrong')).rejects.toMatchObject({ status: 401, message: 'Authentication failed' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('downloads exports with the Authorization header, never the key in the URL', async () => {
    const { api, calls } = setup(
      () => new Response('sk-1\nsk-2\n', { status: 200, headers: { 'Content-Type': 'text/plain', 'Content-Disposition': 'attachment; filename=keys-g1-invalid.txt' } }),
    );
    const { filename, blob } = await api.exportKeys(5, 'invalid');
    expect(filename).toBe('keys-g1-invalid.txt');
    expect(await blob.text()).toBe('sk-1\nsk-2\n');
    expect(calls[0]!.url).toBe('/api/keys/export?group_id=5&status=invalid');
    expect(calls[0]!.url).not.toContain('admin-secret');
    expect(calls[0]!.url).not.toContain('key=');
    expect(header(calls[0]!.init, 'Authorization')).toBe('Bearer admin-secret');

    await api.exportLogKeys({ group_name: 'g', is_success: false });
    expect(calls[1]!.url).toBe('/api/logs/export?group_name=g&is_success=false');
    expect(header(calls[1]!.init, 'Authorization')).toBe('Bearer admin-secret');
  });

  it('uploads key files as multipart without forcing a content type', async () => {
    const { api, calls } = setup(() => jsonResponse({ code: 0, message: 'ok', data: { task_type: 'KEY_IMPORT', is_running: true, processed: 0, total: 2, started_at: 'x' } }));
    const file = new File(['a\nb\n'], 'keys.txt', { type: 'text/plain' });
    const r = await api.addKeysFile(3, file);
    expect(r.data.task_type).toBe('KEY_IMPORT');
    const body = calls[0]!.init.body as FormData;
    expect(body).toBeInstanceOf(FormData);
    expect(body.get('group_id')).toBe('3');
    expect((body.get('file') as File).name).toBe('keys.txt');
    expect(header(calls[0]!.init, 'Content-Type')).toBeNull();
  });

  it('calls the access-key routes with their methods and bodies', async () => {
    const { api, calls } = setup((url, init) =>
      init.method === 'DELETE' ? jsonResponse({ code: 0, message: 'Deleted' }) : jsonResponse({ code: 0, message: 'ok', data: url.endsWith('access-keys') && init.method === 'GET' ? [] : { id: 7 } }),
    );
    await expect(api.listAccessKeys()).resolves.toEqual([]);
    await api.createAccessKey({ name: 'a', filters: { groups: [1], models: [], protocols: ['gemini'] } });
    await api.updateAccessKey(7, { status: 'disabled' });
    await expect(api.deleteAccessKey(7)).resolves.toMatchObject({ message: 'Deleted' });
    expect(calls.map((c) => `${c.init.method} ${c.url}`)).toEqual([
      'GET /api/access-keys',
      'POST /api/access-keys',
      'PUT /api/access-keys/7',
      'DELETE /api/access-keys/7',
    ]);
    expect(JSON.parse(calls[1]!.init.body as string)).toEqual({ name: 'a', filters: { groups: [1], models: [], protocols: ['gemini'] } });
    expect(JSON.parse(calls[2]!.init.body as string)).toEqual({ status: 'disabled' });
  });

  it('refuses a success answer that is not JSON', async () => {
    const { api } = setup(() => new Response('<html>', { status: 200 }));
    await expect(api.listGroups()).rejects.toMatchObject({ code: 'INVALID_RESPONSE' });
  });
});

describe('helpers', () => {
  it('fills and encodes path parameters', () => {
    expect(fillPath('/api/groups/{id}/sub-groups/{sub}', { id: 1, sub: 'a/b' })).toBe('/api/groups/1/sub-groups/a%2Fb');
    expect(() => fillPath('/api/groups/{id}', {})).toThrow(/id/);
  });

  it('skips empty query values', () => {
    expect(queryString({ a: '', b: undefined, c: null, d: 0, e: false })).toBe('?d=0&e=false');
    expect(queryString({})).toBe('');
  });

  it('reads file names from Content-Disposition', () => {
    expect(dispositionFilename('attachment; filename=keys-a-all.txt', 'x')).toBe('keys-a-all.txt');
    expect(dispositionFilename('attachment; filename="a b.csv"', 'x')).toBe('a b.csv');
    expect(dispositionFilename("attachment; filename*=UTF-8''%E5%AF%86.txt", 'x')).toBe('密.txt');
    expect(dispositionFilename(null, 'fallback.txt')).toBe('fallback.txt');
  });
});
