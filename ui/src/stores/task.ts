// The global long-task tracker: GPT-Load runs one import/delete/validation task at a time. While one
// runs we poll `GET /api/tasks/status` every second; when it ends, listeners (tables, stats) refresh.

import { ref } from 'vue';
import { api, type Schemas } from '@/api';

export type TaskStatus = Schemas['TaskStatus'];

export const POLL_MS = 1000;

/** The latest status seen, or null before the first check. */
export const task = ref<TaskStatus | null>(null);
/** The last task seen finishing in this tab (a new object each time). */
export const finishedTask = ref<TaskStatus | null>(null);

type Listener = (t: TaskStatus) => void;
const listeners = new Set<Listener>();
let timer: ReturnType<typeof setTimeout> | null = null;
let wasRunning = false;

/** Calls `fn` whenever a tracked task ends; returns the unsubscribe function. */
export function onTaskFinished(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

let expecting = false;
/** `type@started_at` of the last task reported as finished (each is reported once). */
let reported = '';

function report(status: TaskStatus): void {
  const id = `${status.task_type}@${status.started_at}`;
  if (!status.task_type || id === reported) return;
  reported = id;
  finishedTask.value = { ...status };
  for (const l of [...listeners]) l(status);
}

function apply(status: TaskStatus): void {
  task.value = status;
  if (status.is_running) {
    wasRunning = true;
    schedule();
    return;
  }
  if (wasRunning || expecting) report(status);
  // A task that ended before this tab looked (another tab, an earlier visit) is not news.
  else if (status.task_type) reported = `${status.task_type}@${status.started_at}`;
  wasRunning = false;
  expecting = false;
}

function schedule(): void {
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    await refreshTask();
  }, POLL_MS);
}

/** Reads the status once (and keeps polling while a task runs). */
export async function refreshTask(): Promise<void> {
  try {
    apply(await api.taskStatus());
  } catch {
    // A failed poll (server restarting) tries again while a task is believed to run.
    if (wasRunning) schedule();
  }
}

/** Starts tracking a task an API call just started (its answer is the initial status). */
export function trackTask(initial: TaskStatus): void {
  expecting = true;
  apply(initial);
}

/**
 * Looks for a task an action started without returning its status (copying a group re-imports
 * its keys): reports it even when it already finished before the first poll.
 */
export async function expectTask(): Promise<void> {
  expecting = true;
  await refreshTask();
}

/** Stops polling (logout). */
export function stopTaskPolling(): void {
  if (timer) clearTimeout(timer);
  timer = null;
  wasRunning = false;
  expecting = false;
  task.value = null;
}
