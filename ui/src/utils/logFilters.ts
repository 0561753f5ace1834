// The logs page's filter model and its translation to `GET /api/logs` query parameters.

import type { QueryOf } from '@/api/client';

export type LogQuery = NonNullable<QueryOf<'/api/logs', 'get'>>;

export interface LogFilters {
  is_success: 'all' | 'true' | 'false';
  request_type: 'all' | 'final' | 'retry';
  status_code: number | null;
  parent_group_name: string;
  group_name: string;
  model: string;
  key_value: string;
  /** Substring of the access key's name. */
  access_key_name: string;
  error_contains: string;
  source_ip: string;
  /** [start, end] in epoch milliseconds. */
  range: [number, number] | null;
}

export function emptyLogFilters(): LogFilters {
  return {
    is_success: 'all',
    request_type: 'all',
    status_code: null,
    parent_group_name: '',
    group_name: '',
    model: '',
    key_value: '',
    access_key_name: '',
    error_contains: '',
    source_ip: '',
    range: null,
  };
}

/** The query for the filters (empty filters left out; times as RFC 3339 UTC). */
export function toLogQuery(f: LogFilters): LogQuery {
  const q: LogQuery = {};
  if (f.is_success !== 'all') q.is_success = f.is_success === 'true';
  if (f.request_type !== 'all') q.request_type = f.request_type;
  if (f.status_code !== null && Number.isInteger(f.status_code)) q.status_code = f.status_code;
  const text = ['parent_group_name', 'group_name', 'model', 'key_value', 'access_key_name', 'error_contains', 'source_ip'] as const;
  for (const k of text) {
    const v = f[k].trim();
    if (v) q[k] = v;
  }
  if (f.range) {
    q.start_time = new Date(f.range[0]).toISOString();
    q.end_time = new Date(f.range[1]).toISOString();
  }
  return q;
}

export const LOG_COLUMNS = [
  'timestamp',
  'is_success',
  'request_type',
  'is_stream',
  'status_code',
  'duration_ms',
  'parent_group_name',
  'group_name',
  'model',
  'key_value',
  'access_key_name',
  'source_ip',
  'request_path',
  'upstream_addr',
  'error_message',
] as const;
export type LogColumn = (typeof LOG_COLUMNS)[number];

export const DEFAULT_LOG_COLUMNS: LogColumn[] = ['timestamp', 'is_success', 'request_type', 'status_code', 'duration_ms', 'group_name', 'model', 'key_value', 'access_key_name', 'error_message'];

const COLUMNS_KEY = 'gpt-load.log-columns';

export function loadLogColumns(): LogColumn[] {
  try {
    const raw = JSON.parse(localStorage.getItem(COLUMNS_KEY) ?? 'null') as unknown;
    if (Array.isArray(raw)) {
      const cols = raw.filter((c): c is LogColumn => (LOG_COLUMNS as readonly string[]).includes(c as string));
      if (cols.length) return cols;
    }
  } catch {
    /* defaults */
  }
  return [...DEFAULT_LOG_COLUMNS];
}

export function saveLogColumns(cols: LogColumn[]): void {
  try {
    localStorage.setItem(COLUMNS_KEY, JSON.stringify(cols));
  } catch {
    /* ignore */
  }
}
