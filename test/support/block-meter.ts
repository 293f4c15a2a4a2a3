/**
 * The longest time the event loop spent busy between two ticks of a 5 ms timer, for tests that
 * check the relay's thread is never blocked for long (the TUI's paged reads and searches). A gap
 * counts for the CPU time the process used during it, when that is less than the gap: on a
 * machine shared by other work (2 cores, parallel test runs) a process waits for a core now and
 * then, and that wait is not this code blocking the loop. Blocking work is CPU time, and counts
 * whole.
 */
export function blockMeter() {
  let wall = performance.now();
  let cpu = process.cpuUsage();
  let max = 0;
  const timer = setInterval(() => {
    const nowWall = performance.now();
    const used = process.cpuUsage(cpu);
    max = Math.max(max, Math.min(nowWall - wall, (used.user + used.system) / 1000));
    wall = nowWall;
    cpu = process.cpuUsage();
  }, 5);
  return {
    /** The longest block since the last call (ms). */
    take(): number {
      const longest = max;
      max = 0;
      return Math.round(longest);
    },
    stop: () => clearInterval(timer),
  };
}
