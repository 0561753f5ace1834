// The app's API client: the session's admin key, the UI language, and logout on any 401.

import { clearAuthKey, getAuthKey } from '@/stores/auth';
import { locale } from '@/stores/prefs';
import { createClient } from './client';

export { ApiError, saveBlob } from './client';
export type { Schemas } from './client';

let onLogout: () => void = () => {};

/** What to do after a 401 logged the user out (the router sends them to the login page). */
export function setLogoutHandler(fn: () => void): void {
  onLogout = fn;
}

const client = createClient({
  getToken: getAuthKey,
  getLanguage: () => locale.value,
  onUnauthorized: () => {
    if (getAuthKey()) {
      clearAuthKey('expired');
      onLogout();
    }
  },
});

export const api = client.api;
