import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router';
import { setLogoutHandler } from '@/api';
import { isLoggedIn } from '@/stores/auth';
import { stopTaskPolling } from '@/stores/task';
import AppLayout from '@/layouts/AppLayout.vue';
import LoginView from '@/views/LoginView.vue';

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: LoginView, meta: { public: true } },
  {
    path: '/',
    component: AppLayout,
    children: [
      { path: '', redirect: { name: 'dashboard' } },
      { path: 'dashboard', name: 'dashboard', component: () => import('@/views/DashboardView.vue') },
      { path: 'keys', name: 'keys', component: () => import('@/views/KeysView.vue') },
      { path: 'access-keys', name: 'accessKeys', component: () => import('@/views/AccessKeysView.vue') },
      { path: 'models', name: 'models', component: () => import('@/views/ModelsView.vue') },
      { path: 'route-inspector', name: 'routeInspector', component: () => import('@/views/RouteInspectorView.vue') },
      { path: 'logs', name: 'logs', component: () => import('@/views/LogsView.vue') },
      { path: 'settings', name: 'settings', component: () => import('@/views/SettingsView.vue') },
    ],
  },
  { path: '/:pathMatch(.*)*', redirect: { name: 'dashboard' } },
];

export const router = createRouter({ history: createWebHistory(), routes });

router.beforeEach((to) => {
  if (!to.meta.public && !isLoggedIn.value) {
    return { name: 'login', query: to.fullPath && to.fullPath !== '/' ? { redirect: to.fullPath } : {} };
  }
  if (to.name === 'login' && isLoggedIn.value) return { name: 'dashboard' };
  return true;
});

setLogoutHandler(() => {
  stopTaskPolling();
  const current = router.currentRoute.value;
  if (current.name !== 'login') {
    void router.push({ name: 'login', query: current.fullPath !== '/' ? { redirect: current.fullPath } : {} });
  }
});
