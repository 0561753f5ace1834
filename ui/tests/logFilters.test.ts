import { describe, expect, it } from 'vitest';
import { DEFAULT_LOG_COLUMNS, emptyLogFilters, toLogQuery } from '@/utils/logFilters';

describe('log filters', () => {
  it('leave empty filters out of the query', () => {
    expect(toLogQuery(emptyLogFilters())).toEqual({});
  });

  it('send the access key name trimmed, beside the other filters', () => {
    const q = toLogQuery({ ...emptyLogFilters(), access_key_name: ' agent ', group_name: 'main', is_success: 'false', status_code: 403 });
    expect(q).toEqual({ access_key_name: 'agent', group_name: 'main', is_success: false, status_code: 403 });
  });

  it('send the time range in UTC', () => {
    const q = toLogQuery({ ...emptyLogFilters(), range: [Date.parse('2030-01-01T00:00:00Z'), Date.parse('2030-01-02T00:00:00Z')] });
    expect(q).toEqual({ start_time: '2030-01-01T00:00:00.000Z', end_time: '2030-01-02T00:00:00.000Z' });
  });

  it('show the access key column by default', () => {
    expect(DEFAULT_LOG_COLUMNS).toContain('access_key_name');
  });
});
