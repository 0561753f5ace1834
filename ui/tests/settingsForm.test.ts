import { describe, expect, it } from 'vitest';
import { buildSettingsForm, changedSettings, validateSettings } from '@/utils/settingsForm';
import { CATEGORIES } from './fixtures';

describe('settings form generation', () => {
  it('builds one section per category with typed fields and a model of current values', () => {
    const { sections, model } = buildSettingsForm(CATEGORIES);
    expect(sections.map((s) => s.name)).toEqual(['Basic', 'Request']);
    expect(sections[0]!.fields.map((f) => [f.key, f.type])).toEqual([
      ['app_url', 'string'],
      ['proxy_keys', 'string'],
      ['request_log_retention_days', 'int'],
      ['enable_request_body_logging', 'bool'],
    ]);
    expect(sections[0]!.fields[1]!.secretList).toBe(true);
    expect(sections[0]!.fields[2]!.min).toBe(0);
    expect(sections[1]!.fields[0]!.min).toBe(1);
    expect(sections[0]!.fields[3]!.min).toBeUndefined();
    expect(model).toEqual({
      app_url: 'http://localhost:3001',
      proxy_keys: 'sk-a,sk-b',
      request_log_retention_days: 7,
      enable_request_body_logging: false,
      request_timeout: 600,
      proxy_url: '',
    });
  });

  it('validates minimums, integers and required strings', () => {
    const { sections, model } = buildSettingsForm(CATEGORIES);
    expect(validateSettings(sections, model)).toEqual([]);
    const bad = { ...model, request_timeout: 0, request_log_retention_days: 1.5, app_url: ' ', proxy_url: '' };
    expect(validateSettings(sections, bad)).toEqual([
      { key: 'app_url', error: 'required' },
      { key: 'request_log_retention_days', error: 'integer' },
      { key: 'request_timeout', error: 'min', min: 1 },
    ]);
    expect(validateSettings(sections, { ...model, request_timeout: null })).toEqual([{ key: 'request_timeout', error: 'required' }]);
  });

  it('sends only what changed', () => {
    const { model } = buildSettingsForm(CATEGORIES);
    const edited = { ...model, request_timeout: 30, enable_request_body_logging: true };
    expect(changedSettings(model, edited)).toEqual({ request_timeout: 30, enable_request_body_logging: true });
    expect(changedSettings(model, { ...model })).toEqual({});
  });
});
