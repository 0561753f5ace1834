// The typed client of the admin API. Every path, query, body and `data` type comes from
// `schema.d.ts`, which `npm run gen` generates from `master/openapi.json` (the one source of truth).

import type { components, paths } from './schema';

export type Schemas = components['schemas'];

type Method = 'get' | 'post' | 'put' | 'delete';

/** Paths that have an operation for `M`. */
type PathsWith<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends { responses: unknown } ? P : never;
}[keyof paths];

type Op<P extends keyof paths, M extends Method> = paths[P][M];

/** The JSON body of the 200 answer. */
type OkBody<P extends keyof paths, M extends Method> =
  Op<P, M> extends { responses: { 200: { content: { 'application/json': infer B } } } } ? B : never;

/** `data` of the 200 envelope (`undefined` for message-only answers). */
export type DataOf<P extends keyof paths, M extends Method> =
  OkBody<P, M> extends { data: infer D } ? D : undefined;

export type QueryOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { parameters: { query?: infer Q } } ? (Q extends undefined ? never : Q) : never;

export type PathParamsOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { parameters: { path: infer A } } ? A : never;

export type BodyOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;

/** An error answered by the API (or a transport failure, `status` 0). `message` is for the user. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** What a successful call answers: the envelope's `message` and `data`. */
export interface ApiReply<D> {
  message: string;
  data: D;
}

export interface CallOptions<P extends keyof paths, M extends Method> {
  path?: PathParamsOf<P, M>;
  query?: QueryOf<P, M>;
  body?: BodyOf<P, M>;
  /** A multipart body instead of JSON. */
  form?: FormData;
  signal?: AbortSignal;
}

export interface ClientConfig {
  /** Prefix of every path (the UI is served by the API's own origin: empty). */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** The admin key, or null when logged out. */
  getToken: () => string | null;
  /** Called on any 401 of an authenticated call. */
  onUnauthorized?: () => void;
  /** The UI language, sent as `Accept-Language` so messages come back localised. */
  getLanguage?: () => string;
}

/** Fills `{name}` segments of a path template. */
export function fillPath(template: string, params?: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined || v === null || v === '') throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(String(v));
  });
}

/** A query string from an object; empty, null and undefined values are left out. */
export function queryString(query?: Record<string, unknown>): string {
  if (!query) return '';
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    sp.append(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

/** The file name of a `Content-Disposition` header. */
export function dispositionFilename(header: string | null, fallback: string): string {
  if (!header) return fallback;
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''));
    } catch {
      /* fall through */
    }
  }
  const plain = /filename=("?)([^";]+)\1/i.exec(header);
  return plain?.[2]?.trim() || fallback;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const text = await res.text();
    if (text) {
      try {
        const body = JSON.parse(text) as Record<string, unknown>;
        if (typeof body.code === 'string') code = body.code;
        if (typeof body.message === 'string' && body.message) message = body.message;
        else if (typeof body.error === 'string' && body.error) message = body.error;
      } catch {
        message = text.slice(0, 300);
      }
    }
  } catch {
    /* keep the status text */
  }
  return new ApiError(res.status, code, message);
}

export function createClient(cfg: ClientConfig) {
  const base = cfg.baseUrl ?? '';
  const doFetch = (input: string, init: RequestInit) => (cfg.fetch ?? globalThis.fetch)(input, init);

  function headers(json: boolean, auth = true): Headers {
    const h = new Headers();
    if (json) h.set('Content-Type', 'application/json');
    h.set('Accept', 'application/json');
    const lang = cfg.getLanguage?.();
    if (lang) h.set('Accept-Language', lang);
    const token = auth ? cfg.getToken() : null;
    if (token) h.set('Authorization', `Bearer ${token}`);
    return h;
  }

  async function send(method: string, url: string, init: RequestInit, auth: boolean): Promise<Response> {
    let res: Response;
    try {
      res = await doFetch(url, { method, ...init });
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') throw e;
      throw new ApiError(0, 'NETWORK_ERROR', (e as Error)?.message || 'Network error');
    }
    if (!res.ok) {
      const err = await errorFrom(res);
      if (res.status === 401 && auth) cfg.onUnauthorized?.();
      throw err;
    }
    return res;
  }

  /** Calls an operation; resolves to the envelope's message and data, rejects with `ApiError`. */
  async function call<M extends Method, P extends PathsWith<M>>(
    method: M,
    template: P,
    opts: CallOptions<P, M> = {},
  ): Promise<ApiReply<DataOf<P, M>>> {
    const url =
      base +
      fillPath(template, opts.path as Record<string, unknown> | undefined) +
      queryString(opts.query as Record<string, unknown> | undefined);
    const init: RequestInit = { signal: opts.signal };
    if (opts.form) {
      init.body = opts.form;
      init.headers = headers(false);
    } else if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers = headers(true);
    } else {
      init.headers = headers(false);
    }
    const res = await send(method.toUpperCase(), url, init, true);
    const text = await res.text();
    let body: { code?: unknown; message?: unknown; data?: unknown } = {};
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ApiError(res.status, 'INVALID_RESPONSE', 'The server answered something that is not JSON');
      }
    }
    if (body.code !== undefined && body.code !== 0) {
      throw new ApiError(res.status, String(body.code), String(body.message ?? 'Error'));
    }
    return { message: typeof body.message === 'string' ? body.message : '', data: body.data as DataOf<P, M> };
  }

  /**
   * Downloads a file with the Authorization header (never with the key in the URL) and hands it to
   * the browser as a blob. Resolves to the file name.
   */
  async function download<P extends PathsWith<'get'>>(
    template: P,
    query: QueryOf<P, 'get'>,
    fallbackName: string,
  ): Promise<{ filename: string; blob: Blob }> {
    const url = base + fillPath(template) + queryString(query as Record<string, unknown>);
    const h = headers(false);
    h.set('Accept', '*/*');
    const res = await send('GET', url, { headers: h }, true);
    const blob = await res.blob();
    const filename = dispositionFilename(res.headers.get('Content-Disposition'), fallbackName);
    return { filename, blob };
  }

  /** `POST /api/auth/login`: not enveloped, and a 401 here is an answer, not a logout. */
  async function login(authKey: string): Promise<{ success: boolean; message: string }> {
    let res: Response;
    try {
      res = await doFetch(`${base}/api/auth/login`, {
        method: 'POST',
        headers: headers(true, false),
        body: JSON.stringify({ auth_key: authKey } satisfies Schemas['LoginRequest']),
      });
    } catch (e) {
      throw new ApiError(0, 'NETWORK_ERROR', (e as Error)?.message || 'Network error');
    }
    let body: Partial<Schemas['LoginResponse']> = {};
    try {
      body = (await res.json()) as Partial<Schemas['LoginResponse']>;
    } catch {
      /* not JSON */
    }
    if (res.ok && body.success) return { success: true, message: body.message ?? '' };
    throw new ApiError(res.status, res.status === 429 ? 'TOO_MANY_REQUESTS' : 'UNAUTHORIZED', body.message || res.statusText || `HTTP ${res.status}`);
  }

  const get = <P extends PathsWith<'get'>>(p: P, o?: CallOptions<P, 'get'>) => call('get', p, o).then((r) => r.data);

  /** One function per operation the UI uses. */
  const api = {
    login,
    channelTypes: () => get('/api/channel-types'),
    taskStatus: () => get('/api/tasks/status'),

    listGroups: () => get('/api/groups'),
    createGroup: (body: Schemas['GroupRequest']) => call('post', '/api/groups', { body }),
    updateGroup: (id: number, body: Schemas['GroupRequest']) => call('put', '/api/groups/{id}', { path: { id }, body }),
    deleteGroup: (id: number) => call('delete', '/api/groups/{id}', { path: { id } }),
    reorderGroups: (items: { id: number; sort: number }[]) => call('put', '/api/groups/reorder', { body: { items } }),
    configOptions: () => get('/api/groups/config-options'),
    groupStats: (id: number) => get('/api/groups/{id}/stats', { path: { id } }),
    copyGroup: (id: number, copy_keys: 'none' | 'valid_only' | 'all') =>
      call('post', '/api/groups/{id}/copy', { path: { id }, body: { copy_keys } }),
    subGroups: (id: number) => get('/api/groups/{id}/sub-groups', { path: { id } }),
    addSubGroups: (id: number, sub_groups: { group_id: number; weight: number }[]) =>
      call('post', '/api/groups/{id}/sub-groups', { path: { id }, body: { sub_groups } }),
    updateSubGroupWeight: (id: number, sub: number, weight: number) =>
      call('put', '/api/groups/{id}/sub-groups/{sub}/weight', { path: { id, sub }, body: { weight } }),
    deleteSubGroup: (id: number, sub: number) => call('delete', '/api/groups/{id}/sub-groups/{sub}', { path: { id, sub } }),
    parentAggregates: (id: number) => get('/api/groups/{id}/parent-aggregate-groups', { path: { id } }),
    /** The model list of the group's upstream, fetched with one of its keys (nothing is stored). */
    discoverModels: (id: number) => call('post', '/api/groups/{id}/models/discover', { path: { id } }).then((r) => r.data),

    listKeys: (query: QueryOf<'/api/keys', 'get'>) => get('/api/keys', { query }),
    addKeysAsync: (group_id: number, keys_text: string) => call('post', '/api/keys/add-async', { body: { group_id, keys_text } }),
    addKeysFile: (group_id: number, file: File) => {
      const form = new FormData();
      form.append('group_id', String(group_id));
      form.append('file', file, file.name);
      return call('post', '/api/keys/add-async', { form });
    },
    deleteKeysAsync: (group_id: number, keys_text: string) => call('post', '/api/keys/delete-async', { body: { group_id, keys_text } }),
    deleteKeys: (group_id: number, keys_text: string) => call('post', '/api/keys/delete-multiple', { body: { group_id, keys_text } }),
    restoreKeys: (group_id: number, keys_text: string) => call('post', '/api/keys/restore-multiple', { body: { group_id, keys_text } }),
    testKeys: (group_id: number, keys_text: string) => call('post', '/api/keys/test-multiple', { body: { group_id, keys_text } }),
    restoreAllInvalid: (group_id: number) => call('post', '/api/keys/restore-all-invalid', { body: { group_id } }),
    clearAllInvalid: (group_id: number) => call('post', '/api/keys/clear-all-invalid', { body: { group_id } }),
    clearAllKeys: (group_id: number) => call('post', '/api/keys/clear-all', { body: { group_id } }),
    validateGroup: (group_id: number, status?: 'active' | 'invalid') =>
      call('post', '/api/keys/validate-group', { body: status ? { group_id, status } : { group_id } }),
    updateKeyNotes: (id: number, notes: string) => call('put', '/api/keys/{id}/notes', { path: { id }, body: { notes } }),
    exportKeys: (group_id: number, status: 'all' | 'active' | 'invalid') =>
      download('/api/keys/export', { group_id, status }, `keys-${group_id}-${status}.txt`),

    dashboardStats: () => get('/api/dashboard/stats'),
    dashboardChart: (groupId?: number) => get('/api/dashboard/chart', { query: groupId ? { groupId } : {} }),
    encryptionStatus: () => get('/api/dashboard/encryption-status'),

    listLogs: (query: QueryOf<'/api/logs', 'get'>) => get('/api/logs', { query }),
    exportLogKeys: (query: QueryOf<'/api/logs/export', 'get'>) => download('/api/logs/export', query, 'log_keys_export.csv'),

    listAccessKeys: () => get('/api/access-keys'),
    createAccessKey: (body: Schemas['AccessKeyCreate']) => call('post', '/api/access-keys', { body }),
    updateAccessKey: (id: number, body: Schemas['AccessKeyUpdate']) => call('put', '/api/access-keys/{id}', { path: { id }, body }),
    deleteAccessKey: (id: number) => call('delete', '/api/access-keys/{id}', { path: { id } }),
    inspectRoute: (body: Schemas['RouteInspectRequest']) => call('post', '/api/route/inspect', { body }).then((r) => r.data),

    getSettings: () => get('/api/settings'),
    updateSettings: (body: Schemas['SettingsUpdate']) => call('put', '/api/settings', { body }),
  };

  return { call, download, api };
}

export type Api = ReturnType<typeof createClient>['api'];

/** Saves a blob as a file through a temporary object URL. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
