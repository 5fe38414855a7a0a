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

/**
 * A line whose interrupt comes after `sleepMs` of sleep, or is raised on the `pendingAfter`-th
 * look by polling since it was last acknowledged; `ours`: that interrupt is for the entry the halt
 * waits for. `log` keeps the order of acknowledgements, sleeps and looks at the rings.
 */
class FakeLine implements InterruptLine {
  /** What the halt waits for (the driver's used entry) is there. */
  arrived = false;
  raised = false;
  readonly waits: number[] = [];
  readonly log: string[] = [];
  pendingChecks = 0;
  private looksSinceAcknowledged = 0;

  constructor(
    private readonly clock: FakeClock,
    public sleepMs: number,
    private readonly pendingAfter = Infinity,
    private readonly ours = true,
  ) {}

  pending(): boolean {
    this.pendingChecks++;
    if (!this.raised && ++this.looksSinceAcknowledged >= this.pendingAfter) {
      this.raised = true;
      if (this.ours) this.arrived = true;
    }
    return this.raised;
  }

  wait(timeoutMs: number): void {
    this.waits.push(timeoutMs);
    this.log.push('sleep');
    this.clock.ms += Math.min(this.sleepMs, timeoutMs);
    if (this.sleepMs <= timeoutMs) this.arrived = true;
    this.raised = false;
    this.looksSinceAcknowledged = 0;
  }

  acknowledge(): void {
    this.log.push('ack');
    this.raised = false;
    this.looksSinceAcknowledged = 0;
  }

  readonly ready = (): boolean => {
    this.log.push('ready');
    return this.arrived;
  };
}

const halt = (poller: HaltPoller, line: FakeLine, timeoutMs = 1000): boolean => {
  line.arrived = false;
  return poller.halt(line.ready, line, timeoutMs);
};

const setup = (wait: 'halt-poll' | 'sleep', sleepMs: number, pendingAfter = Infinity, ours = true): { poller: HaltPoller; line: FakeLine } => {
  const clock = new FakeClock();
  return { poller: new HaltPoller(wait, PARAMETERS, clock.now), line: new FakeLine(clock, sleepMs, pendingAfter, ours) };
};

test('the window starts at 0 and grows after halts that slept but ended within the limit', () => {
  const { poller, line } = setup('halt-poll', 0.2);
  assert.is(poller.windowMicroseconds, 0);
  assert.ok(halt(poller, line));
  assert.is(line.pendingChecks, 1, 'no window yet: one look for an interrupt left over, then straight to sleep');
  assert.is(poller.windowMicroseconds, 100);
  assert.ok(halt(poller, line));
  assert.ok(line.pendingChecks > 2, 'then it polls the line first');
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

test('an interrupt seen while polling ends the halt without sleeping, and is acknowledged when the next halt starts', () => {
  const { poller, line } = setup('halt-poll', 0.2, 50);
  halt(poller, line); // opens a window (the first halt polls nothing: pending is not looked at)
  line.waits.length = 0;
  line.log.length = 0;
  line.pendingChecks = 0;
  assert.ok(halt(poller, line));
  assert.equal(line.waits, [], 'no sleep');
  assert.is(line.pendingChecks, 50, 'looked until the interrupt was raised');
  assert.not.ok(line.log.includes('ack'), 'not acknowledged before the driver has done its work');
  assert.is(poller.windowMicroseconds, 100, 'a halt ended by polling leaves the window as it is');
  line.log.length = 0;
  line.pendingChecks = 0;
  assert.ok(halt(poller, line));
  assert.equal(line.log.slice(0, 2), ['ack', 'ready'], 'acknowledged first thing in the next halt, before the rings are looked at');
  assert.is(line.pendingChecks, 50, 'the acknowledged interrupt no longer counts: the halt polled for a new one');
  assert.equal(line.waits, []);
});

test('an entry found without halting has its interrupt acknowledged by the next halt', () => {
  const { poller, line } = setup('halt-poll', 0.2, 50);
  halt(poller, line); // opens a window
  line.raised = true; // raised for an entry the driver took without halting
  line.waits.length = 0;
  line.log.length = 0;
  line.pendingChecks = 0;
  assert.ok(halt(poller, line));
  assert.equal(line.log.slice(0, 2), ['ack', 'ready']);
  assert.is(line.pendingChecks, 51, 'one look at the start, then a full poll for the new interrupt');
  assert.equal(line.waits, [], 'no sleep');
  line.arrived = true;
  line.log.length = 0;
  assert.ok(poller.halt(line.ready, line, 1000));
  assert.equal(line.log, ['ack', 'ready'], 'an awaited entry already there: no poll, no sleep');
});

test('an interrupt seen while polling that is not the one awaited is taken, polling goes on, then the halt sleeps', () => {
  const { poller, line } = setup('halt-poll', 0.2, 50, false);
  halt(poller, line);
  line.waits.length = 0;
  line.log.length = 0;
  assert.ok(halt(poller, line));
  assert.equal(line.waits, [1000], 'one sleep, after the window');
  const taken = line.log.filter((entry) => entry === 'ack').length;
  assert.ok(taken >= 2, `each foreign interrupt taken while the window lasts (${taken})`);
  assert.is(poller.windowMicroseconds, 200, 'the halt slept within the limit: the window grows');
});

test('sleep mode never polls, and a halt gives up after its timeout', () => {
  const { poller, line } = setup('sleep', 0.2);
  for (let i = 0; i < 3; i++) assert.ok(halt(poller, line));
  assert.is(line.pendingChecks, 3, 'one look per halt for an interrupt left over, no polling');
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
