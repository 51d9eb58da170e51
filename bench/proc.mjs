// CPU time of the worker's workerd process under `wrangler dev`, from /proc.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** The workerd running the user worker (the one with the inspector) and wrangler's proxy. */
export function workerdPids(stack) {
  const pgid = stack.workerProc.pid;
  const pids = execFileSync('pgrep', ['-g', String(pgid), '-x', 'workerd']).toString().trim().split('\n');
  const user = pids.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('inspector-addr'));
  const proxy = pids.find((p) => p !== user);
  return { user, proxy };
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
export function ticks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

/**
 * CPU time of a process in milliseconds, to the nanosecond: the sum over its threads of
 * the time each spent on a CPU (/proc/PID/task/TID/schedstat). /proc/PID/stat counts in
 * clock ticks of 10 ms, too coarse for a batch of a few hundred milliseconds.
 */
export function cpuMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}
