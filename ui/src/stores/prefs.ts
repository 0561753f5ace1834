// UI preferences kept in localStorage: theme (auto/light/dark) and language.

import { computed, ref, watch } from 'vue';

export type ThemeMode = 'auto' | 'light' | 'dark';
export const LOCALES = ['en-US', 'zh-CN', 'ja-JP'] as const;
export type Locale = (typeof LOCALES)[number];

const THEME_KEY = 'gpt-load.theme';
const LOCALE_KEY = 'gpt-load.locale';

function stored(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function persist(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* ignore */
  }
}

/** The best UI language for a browser's language list. */
export function detectLocale(languages: readonly string[]): Locale {
  for (const raw of languages) {
    const l = raw.toLowerCase();
    if (l.startsWith('zh')) return 'zh-CN';
    if (l.startsWith('ja')) return 'ja-JP';
    if (l.startsWith('en')) return 'en-US';
  }
  return 'en-US';
}

function initialLocale(): Locale {
  const s = stored(LOCALE_KEY);
  if (s && (LOCALES as readonly string[]).includes(s)) return s as Locale;
  const langs = typeof navigator !== 'undefined' ? (navigator.languages?.length ? navigator.languages : [navigator.language]) : [];
  return detectLocale(langs.filter(Boolean));
}

function initialTheme(): ThemeMode {
  const s = stored(THEME_KEY);
  return s === 'light' || s === 'dark' || s === 'auto' ? s : 'auto';
}

export const themeMode = ref<ThemeMode>(initialTheme());
export const locale = ref<Locale>(initialLocale());

const media = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
const systemDark = ref(media?.matches ?? false);
media?.addEventListener?.('change', (e) => {
  systemDark.value = e.matches;
});

export const isDark = computed(() => themeMode.value === 'dark' || (themeMode.value === 'auto' && systemDark.value));

watch(themeMode, (v) => persist(THEME_KEY, v));
watch(locale, (v) => persist(LOCALE_KEY, v));
