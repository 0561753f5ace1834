// The admin key lives in sessionStorage only (it dies with the tab) and is sent as a Bearer token.

import { computed, ref } from 'vue';

const STORAGE_KEY = 'gpt-load.auth-key';

function read(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

const key = ref<string | null>(read());
/** Why the user was sent to the login page (`expired` after a 401). */
export const logoutReason = ref<'' | 'expired'>('');

export const isLoggedIn = computed(() => !!key.value);

export function getAuthKey(): string | null {
  return key.value;
}

export function setAuthKey(value: string): void {
  key.value = value;
  logoutReason.value = '';
  try {
    sessionStorage.setItem(STORAGE_KEY, value);
  } catch {
    /* private mode: keep it in memory */
  }
}

export function clearAuthKey(reason: '' | 'expired' = ''): void {
  key.value = null;
  logoutReason.value = reason;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* ignore */
  }
}
