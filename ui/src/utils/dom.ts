import type { InputHTMLAttributes } from 'vue';

/** Attributes for a Naive UI input's inner `<input>`: a `data-test` id (used by the e2e tests). */
export function tid(id: string, extra: InputHTMLAttributes = {}): InputHTMLAttributes {
  return { ...extra, ['data-test' as string]: id } as InputHTMLAttributes;
}
