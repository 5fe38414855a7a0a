// The benchmark drivers' model of a halting KVM vCPU: the adaptive poll window and what it polls.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HaltPoller, parseDriverWait, type InterruptLine } from '../../bench/halt-poll.js';

/** KVM's factors with a 2 ms limit, growing from 100 µs. */
const PARAMETERS = { maxNs: 2_000_000, growStartNs: 100_000, grow: 2, shrink: 2 };

/** A clock the test moves: 1 µs per reading (polling takes time), plus what a sleep lasts. */
class FakeClock {
  ms = 0;
  readonly now = (): number => (this.ms += 0.001);
}

/** A line whose interrupt comes after `sleepMs` of sleep and is never seen by polling (unless `pendingAfter` looks). */
class FakeLine implements InterruptLine {
  arrived = false;
  readonly waits: number[] = [];
  pendingChecks = 0;

  constructor(
    private readonly clock: FakeClock,
    public sleepMs: number,
    private readonly pendingAfter = Infinity,
  ) {}

  pending(): boolean {
    this.pendingChecks++;
    return this.pendingChecks >= this.pendingAfter;
  }

  wait(timeoutMs: number): void {
    this.waits.push(timeoutMs);
    if (timeoutMs === 0) {
      if (this.pendingChecks >= this.pendingAfter) this.arrived = true;
      return;
    }
    this.clock.ms += Math.min(this.sleepMs, timeoutMs);
    if (this.sleepMs <= timeoutMs) this.arrived = true;
  }
}

const halt = (poller: HaltPoller, line: FakeLine, timeoutMs = 1000): boolean => {
  line.arrived = false;
  return poller.halt(() => line.arrived, line, timeoutMs);
};

const setup = (wait: 'halt-poll' | 'sleep', sleepMs: number, pendingAfter = Infinity): { poller: HaltPoller; line: FakeLine } => {
  const clock = new FakeClock();
  return { poller: new HaltPoller(wait, PARAMETERS, clock.now), line: new FakeLine(clock, sleepMs, pendingAfter) };
};

test('the window starts at 0 and grows after halts that slept but ended within the limit', () => {
  const { poller, line } = setup('halt-poll', 0.2);
  assert.is(poller.windowMicroseconds, 0);
  assert.ok(halt(poller, line));
  assert.is(line.pendingChecks, 0, 'no window yet: straight to sleep');
  assert.is(poller.windowMicroseconds, 100);
  assert.ok(halt(poller, line));
  assert.ok(line.pendingChecks > 0, 'then it polls the line first');
  assert.is(poller.windowMicroseconds, 200);
  assert.ok(halt(poller, line));
  assert.is(poller.windowMicroseconds, 400);
});

test('a halt that outlasts the limit halves the window, and a window below the start goes to 0', () => {
  const { poller, line } = setup('halt-poll', 0.2);
  for (let i = 0; i < 3; i++) halt(poller, line);
  assert.is(poller.windowMicroseconds, 400);
  line.sleepMs = 3;
  halt(poller, line);
  assert.is(poller.windowMicroseconds, 200);
  halt(poller, line);
  assert.is(poller.windowMicroseconds, 100);
  halt(poller, line);
  assert.is(poller.windowMicroseconds, 0);
});

test('an interrupt seen while polling is taken without sleeping', () => {
  const { poller, line } = setup('halt-poll', 0.2, 50);
  halt(poller, line); // opens a window (the first halt polls nothing: pending is not looked at)
  line.waits.length = 0;
  assert.ok(halt(poller, line));
  assert.equal(line.waits, [0], 'acknowledged with a zero-timeout wait, no sleep');
  assert.is(poller.windowMicroseconds, 100, 'a halt ended by polling leaves the window as it is');
});

test('sleep mode never polls, and a halt gives up after its timeout', () => {
  const { poller, line } = setup('sleep', 0.2, 1);
  for (let i = 0; i < 3; i++) assert.ok(halt(poller, line));
  assert.is(line.pendingChecks, 0);
  assert.is(poller.windowMicroseconds, 0);
  line.sleepMs = 50;
  assert.not.ok(halt(poller, line, 5), 'nothing within 5 ms');
});

test('--driver-wait takes halt-poll (the default) or sleep', () => {
  assert.is(parseDriverWait(undefined), 'halt-poll');
  assert.is(parseDriverWait('sleep'), 'sleep');
  assert.throws(() => parseDriverWait('spin'), /--driver-wait "spin" is not halt-poll or sleep/);
});

test.run();
