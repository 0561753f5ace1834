/** Keys from user text, as the server parses them: a JSON array of strings, or tokens separated by
 * whitespace, `,` or `;`; empty entries and duplicates dropped, order kept. */
export function parseKeys(text: string): string[] {
  const trimmed = text.trim();
  let raw: string[] | null = null;
  if (trimmed.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(trimmed);
      if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'string')) raw = v as string[];
    } catch {
      /* tokens below */
    }
  }
  raw ??= trimmed.split(/[\s,;]+/);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const k of raw) {
    const t = k.trim();
    if (t && !seen.has(t)) {
      seen.add(t);
      out.push(t);
    }
  }
  return out;
}
