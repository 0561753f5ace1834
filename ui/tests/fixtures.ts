import type { Schemas } from '@/api/client';

export const CATEGORIES: Schemas['SettingsCategory'][] = [
  {
    category_name: 'Basic',
    settings: [
      { key: 'app_url', name: 'Application URL', value: 'http://localhost:3001', type: 'string', default_value: 'http://localhost:3001', description: 'URL', category: 'Basic', required: true },
      { key: 'proxy_keys', name: 'Global Proxy Keys', value: 'sk-a,sk-b', type: 'string', default_value: '', description: 'keys', category: 'Basic', required: true },
      { key: 'request_log_retention_days', name: 'Retention', value: 7, type: 'int', default_value: '7', description: 'days', category: 'Basic', required: true, min_value: 0 },
      { key: 'enable_request_body_logging', name: 'Body logging', value: false, type: 'bool', default_value: 'false', description: 'b', category: 'Basic', required: false },
    ],
  },
  {
    category_name: 'Request',
    settings: [
      { key: 'request_timeout', name: 'Timeout', value: 600, type: 'int', default_value: '600', description: 't', category: 'Request', required: true, min_value: 1 },
      { key: 'proxy_url', name: 'Proxy', value: '', type: 'string', default_value: '', description: 'p', category: 'Request', required: false },
    ],
  },
];

export const CONFIG_OPTIONS: Schemas['ConfigOption'][] = [
  { key: 'request_timeout', name: 'Request Timeout', description: 'seconds', default_value: 600 },
  { key: 'max_retries', name: 'Max Retries', description: 'retries', default_value: 3 },
  { key: 'proxy_url', name: 'Proxy URL', description: 'proxy', default_value: '' },
  { key: 'enable_request_body_logging', name: 'Body logging', description: 'b', default_value: false },
];

/** A standard group with every required field; `over` sets the ones a test cares about. */
export function makeGroup(over: Partial<Schemas['Group']> & Pick<Schemas['Group'], 'id' | 'name'>): Schemas['Group'] {
  return {
    endpoint: '',
    display_name: '',
    description: '',
    group_type: 'standard',
    channel_type: 'openai',
    sort: 0,
    test_model: 'm',
    validation_endpoint: '',
    model_redirect_strict: false,
    proxy_keys: '',
    models: [],
    priority: 0,
    weight: 1,
    created_at: '',
    updated_at: '',
    ...over,
  };
}
