import { afterEach, describe, expect, it, vi } from 'vitest';

const taskStatus = vi.hoisted(() => vi.fn());
vi.mock('@/api', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api')>();
  return { ...actual, api: { taskStatus } };
});

import { expectTask, finishedTask, onTaskFinished, POLL_MS, refreshTask, stopTaskPolling, task, trackTask, type TaskStatus } from '@/stores/task';

const status = (processed: number, running = true, extra: Partial<TaskStatus> = {}): TaskStatus => ({
  task_type: 'KEY_IMPORT',
  is_running: running,
  group_name: 'g',
  processed,
  total: 1000,
  started_at: '2025-01-01T00:00:00Z',
  ...extra,
});

afterEach(() => {
  stopTaskPolling();
  vi.useRealTimers();
  taskStatus.mockReset();
});

describe('task tracker', () => {
  it('polls every second while the task runs and reports its end once', async () => {
    vi.useFakeTimers();
    taskStatus
      .mockResolvedValueOnce(status(500))
      .mockResolvedValueOnce(status(1000, false, { result: { added_count: 1000, ignored_count: 0 }, duration_seconds: 2.1 }));
    const ended = vi.fn();
    const off = onTaskFinished(ended);

    trackTask(status(0));
    expect(task.value?.processed).toBe(0);
    expect(taskStatus).not.toHaveBeenCalled();

    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(POLL_MS).toBe(1000);
    expect(taskStatus).toHaveBeenCalledTimes(1);
    expect(task.value?.processed).toBe(500);

    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(taskStatus).toHaveBeenCalledTimes(2);
    expect(task.value?.is_running).toBe(false);
    expect(ended).toHaveBeenCalledTimes(1);
    expect(finishedTask.value?.result?.added_count).toBe(1000);

    // Finished: no more polling.
    await vi.advanceTimersByTimeAsync(POLL_MS * 5);
    expect(taskStatus).toHaveBeenCalledTimes(2);
    off();
  });

  it('keeps polling through a failed status call', async () => {
    vi.useFakeTimers();
    taskStatus.mockRejectedValueOnce(new Error('down')).mockResolvedValueOnce(status(1000, false));
    trackTask(status(10));
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(task.value?.processed).toBe(10);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(task.value?.is_running).toBe(false);
    expect(taskStatus).toHaveBeenCalledTimes(2);
  });

  it('reports a task that finished before the first poll when one was expected, once', async () => {
    const ended = vi.fn();
    const off = onTaskFinished(ended);
    // On load: an old finished task is not news.
    taskStatus.mockResolvedValueOnce(status(5, false, { task_type: 'KEY_DELETE', started_at: 'old' }));
    await refreshTask();
    expect(ended).not.toHaveBeenCalled();
    // Copying a group starts an import that is over before we look.
    taskStatus.mockResolvedValueOnce(status(3, false, { started_at: 'new', result: { added_count: 3, ignored_count: 0 } }));
    await expectTask();
    expect(ended).toHaveBeenCalledTimes(1);
    expect(finishedTask.value?.result?.added_count).toBe(3);
    // Looking again does not report it twice.
    taskStatus.mockResolvedValueOnce(status(3, false, { started_at: 'new' }));
    await expectTask();
    expect(ended).toHaveBeenCalledTimes(1);
    off();
  });
});
