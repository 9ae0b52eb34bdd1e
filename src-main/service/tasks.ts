// Long background tasks that are not training runs (imports, self-instruct, evaluations, LLM judging): each has
// an id for its `task.progress` events and an AbortController that `tasks.cancel` triggers.

let counter = 0;
const running = new Map<string, AbortController>();

export function startTask(prefix: string): { taskId: string; signal: AbortSignal; done: () => void } {
  const taskId = `${prefix}${++counter}`;
  const controller = new AbortController();
  running.set(taskId, controller);
  return { taskId, signal: controller.signal, done: () => running.delete(taskId) };
}

export function cancelTask(taskId: string): void {
  running.get(taskId)?.abort();
}

export function isTaskRunning(taskId: string | null | undefined): boolean {
  return !!taskId && running.has(taskId);
}

/** Tasks running now (a workspace switch waits for none). */
export function runningTaskCount(): number {
  return running.size;
}
