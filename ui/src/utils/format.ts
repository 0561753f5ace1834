// Formatting helpers shared by the pages.

/** Masks a secret, keeping 4 characters at each end (short ones fully hidden). */
export function maskKey(key: string): string {
  if (!key) return '';
  if (key.length <= 8) return '•'.repeat(key.length);
  return `${key.slice(0, 4)}${'•'.repeat(Math.min(12, key.length - 8))}${key.slice(-4)}`;
}

/** True for Go's zero time or an unparsable value. */
export function isZeroTime(s: string | null | undefined): boolean {
  if (!s) return true;
  if (s.startsWith('0001-01-01')) return true;
  return Number.isNaN(Date.parse(s));
}

export function formatDateTime(s: string | null | undefined, locale: string): string {
  if (isZeroTime(s)) return '—';
  // `hourCycle: 'h23'`, not `hour12: false`: the latter shows midnight as 24:00 in en-US.
  return new Date(s as string).toLocaleString(locale, { hourCycle: 'h23' });
}

/** "3 minutes ago" in the UI language. */
export function relativeTime(s: string | null | undefined, locale: string, now = Date.now()): string {
  if (isZeroTime(s)) return '—';
  const diff = (Date.parse(s as string) - now) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
  if (abs < 45) return rtf.format(Math.round(diff), 'second');
  if (abs < 45 * 60) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 26 * 86400) return rtf.format(Math.round(diff / 86400), 'day');
  if (abs < 320 * 86400) return rtf.format(Math.round(diff / (30 * 86400)), 'month');
  return rtf.format(Math.round(diff / (365 * 86400)), 'year');
}

export function formatNumber(n: number, locale: string, digits = 0): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(n);
}

/** `0.1234` → `12.34%`. */
export function formatRate(fraction: number): string {
  return `${(fraction * 100).toFixed(2).replace(/\.?0+$/, '')}%`;
}

/** Copies text; resolves false when the browser refuses. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall back below */
  }
  try {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  } catch {
    return false;
  }
}
