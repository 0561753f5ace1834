import { watch } from 'vue';
import { createI18n } from 'vue-i18n';
import { dateEnUS, dateJaJP, dateZhCN, enUS, jaJP, zhCN } from 'naive-ui';
import { locale, type Locale } from '@/stores/prefs';
import enUSMessages from './en-US';
import jaJPMessages from './ja-JP';
import zhCNMessages from './zh-CN';

export type MessageSchema = typeof enUSMessages;

export const messages: Record<Locale, MessageSchema> = {
  'en-US': enUSMessages,
  'zh-CN': zhCNMessages,
  'ja-JP': jaJPMessages,
};

export const LOCALE_NAMES: Record<Locale, string> = {
  'en-US': 'English',
  'zh-CN': '简体中文',
  'ja-JP': '日本語',
};

export const i18n = createI18n<[MessageSchema], Locale, false>({
  legacy: false,
  locale: locale.value,
  fallbackLocale: 'en-US',
  messages,
});

function applyLocale(l: Locale) {
  i18n.global.locale.value = l;
  if (typeof document !== 'undefined') document.documentElement.lang = l;
}
applyLocale(locale.value);
watch(locale, applyLocale);

/** Naive UI's own strings and date formats for a UI language. */
export function naiveLocale(l: Locale) {
  switch (l) {
    case 'zh-CN':
      return { locale: zhCN, dateLocale: dateZhCN };
    case 'ja-JP':
      return { locale: jaJP, dateLocale: dateJaJP };
    default:
      return { locale: enUS, dateLocale: dateEnUS };
  }
}
