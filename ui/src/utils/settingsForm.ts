// The settings page is generated from `GET /api/settings`: these pure functions build its model,
// validate it, and compute the `PUT /api/settings` body (only the changed values).

import type { Schemas } from '@/api/client';

export type SettingValue = number | boolean | string | null;
export type SettingsModel = Record<string, SettingValue>;

export interface SettingField {
  key: string;
  name: string;
  description: string;
  type: Schemas['SettingType'];
  required: boolean;
  min?: number;
  defaultValue: string;
  /** Proxy-key fields get the key generator. */
  secretList: boolean;
}

export interface SettingsSection {
  name: string;
  fields: SettingField[];
}

export function buildSettingsForm(categories: Schemas['SettingsCategory'][]): { sections: SettingsSection[]; model: SettingsModel } {
  const model: SettingsModel = {};
  const sections = categories.map((c) => ({
    name: c.category_name,
    fields: c.settings.map((s) => {
      model[s.key] = normalize(s.type, s.value);
      return {
        key: s.key,
        name: s.name,
        description: s.description,
        type: s.type,
        required: s.required,
        min: s.type === 'int' ? s.min_value : undefined,
        defaultValue: s.default_value,
        secretList: s.key === 'proxy_keys',
      } satisfies SettingField;
    }),
  }));
  return { sections, model };
}

function normalize(type: Schemas['SettingType'], v: unknown): SettingValue {
  if (type === 'int') return typeof v === 'number' ? v : v === null || v === '' ? null : Number(v);
  if (type === 'bool') return v === true || v === 'true';
  return v === null || v === undefined ? '' : String(v);
}

/** A problem with one field: the key, an i18n key under `settings.errors`, and parameters. */
export interface SettingError {
  key: string;
  error: 'required' | 'integer' | 'min';
  min?: number;
}

export function validateSetting(field: SettingField, v: SettingValue): SettingError | null {
  if (field.type === 'int') {
    if (v === null || v === '' || typeof v !== 'number' || Number.isNaN(v)) return { key: field.key, error: 'required' };
    if (!Number.isInteger(v)) return { key: field.key, error: 'integer' };
    if (field.min !== undefined && v < field.min) return { key: field.key, error: 'min', min: field.min };
  } else if (field.type === 'string' && field.required && !String(v ?? '').trim()) {
    return { key: field.key, error: 'required' };
  }
  return null;
}

export function validateSettings(sections: SettingsSection[], model: SettingsModel): SettingError[] {
  return sections.flatMap((s) => s.fields.map((f) => validateSetting(f, model[f.key] ?? null))).filter((e): e is SettingError => !!e);
}

/** The values that differ from what the server sent (the body of `PUT /api/settings`). */
export function changedSettings(original: SettingsModel, model: SettingsModel): Schemas['SettingsUpdate'] {
  const out: Schemas['SettingsUpdate'] = {};
  for (const [k, v] of Object.entries(model)) {
    if (v === null) continue;
    if (original[k] !== v) out[k] = v;
  }
  return out;
}
