// Whether a process exists, for clean-up decisions about what a (possibly killed) process left.

/** True while `pid` names a process (also one this process may not signal: EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
