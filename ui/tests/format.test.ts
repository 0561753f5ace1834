import { describe, expect, it } from 'vitest';
import { formatDateTime, maskKey } from '@/utils/format';

describe('formatting', () => {
  it('shows midnight as 00, not 24', () => {
    const midnight = new Date(2030, 0, 1, 0, 5, 0).toISOString();
    expect(formatDateTime(midnight, 'en-US')).toContain('00:05:00');
    expect(formatDateTime(midnight, 'en-US')).not.toContain('24:');
  });

  it('shows a dash for missing and zero times', () => {
    expect(formatDateTime(null, 'en-US')).toBe('—');
    expect(formatDateTime('0001-01-01T00:00:00Z', 'en-US')).toBe('—');
  });

  it('masks keys keeping four characters at each end', () => {
    expect(maskKey('sk-abcdefghijklmnop')).toBe('sk-a•••••••••••mnop');
    expect(maskKey('short')).toBe('•••••');
  });
});
