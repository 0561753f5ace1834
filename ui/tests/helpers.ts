import { defineComponent, h, type Component, type Plugin } from 'vue';
import { mount } from '@vue/test-utils';
import { NDialogProvider, NMessageProvider, NNotificationProvider } from 'naive-ui';
import { i18n } from '@/i18n';

/** Mounts a component inside Naive UI's providers, with the app's i18n (and any other plugins, such as a router). */
export function mountWithProviders(comp: Component, props: Record<string, unknown> = {}, plugins: Plugin[] = []) {
  const Host = defineComponent({
    setup() {
      return () =>
        h(NMessageProvider, null, {
          default: () => h(NDialogProvider, null, { default: () => h(NNotificationProvider, null, { default: () => h(comp, props) }) }),
        });
    },
  });
  return mount(Host, { attachTo: document.body, global: { plugins: [i18n, ...plugins] } });
}

/** Waits for pending promises and Vue updates. */
export async function flush(times = 3) {
  for (let i = 0; i < times; i++) await new Promise((r) => setTimeout(r, 0));
}

/** A `Response` with a JSON body. */
export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}
