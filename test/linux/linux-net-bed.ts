/**
 * The host side of a Linux guest's network, all inside a namespace the test
 * creates: a TAP with the host address, dnsmasq answering DHCP on it, and a
 * UDP listener for the guest's netconsole. kvm runs inside the namespace too
 * (through `prefix`), so it attaches to that TAP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NetNamespace } from '../helpers/netns.js';

export const TAP_NAME = 'kvmlx0';
export const HOST_ADDRESS = '10.0.2.2';
export const GUEST_ADDRESS = '10.0.2.15';
export const NETCONSOLE_PORT = 6666;
const NETCONSOLE_GUEST_PORT = 6665;

/** Collects a child's output as text. */
class Collected {
  text = '';
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.text += d.toString('latin1')));
    child.stderr?.on('data', (d: Buffer) => (this.text += d.toString('latin1')));
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

export class LinuxNetBed {
  private constructor(
    readonly ns: NetNamespace,
    private readonly dnsmasq: Collected,
    private readonly listener: Collected,
    private readonly leaseFile: string,
  ) {}

  /** Namespace, TAP, dnsmasq and the netconsole listener; `dir` holds dnsmasq's files. */
  static async create(dir: string): Promise<LinuxNetBed> {
    const ns = NetNamespace.create('kvmlx');
    if (typeof ns === 'string') throw new Error(`the Linux network test needs a network namespace: ${ns}`);
    ns.ip('tuntap', 'add', 'dev', TAP_NAME, 'mode', 'tap');
    ns.ip('addr', 'add', `${HOST_ADDRESS}/24`, 'dev', TAP_NAME);
    ns.ip('link', 'set', TAP_NAME, 'up');
    const leaseFile = path.join(dir, 'dnsmasq.leases');
    const dnsmasq = new Collected(
      spawn('ip', [...ns.execPrefix, 'dnsmasq', '--keep-in-foreground', '--log-facility=-', '--log-dhcp', '--user=root',
        '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--port=0', `--interface=${TAP_NAME}`, '--bind-interfaces',
        `--dhcp-range=${GUEST_ADDRESS},${GUEST_ADDRESS},255.255.255.0,1h`, `--dhcp-leasefile=${leaseFile}`,
        `--pid-file=${path.join(dir, 'dnsmasq.pid')}`]),
    );
    // netconsole sends to the Ethernet broadcast address; a socket on the port receives it.
    const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>process.stdout.write(m));` +
      `s.bind(${NETCONSOLE_PORT},'0.0.0.0',()=>process.stdout.write('listening\\n'));`;
    const listener = new Collected(spawn('ip', [...ns.execPrefix, process.execPath, '-e', script]));
    const bed = new LinuxNetBed(ns, dnsmasq, listener, leaseFile);
    await bed.waitFor(() => listener.text.includes('listening\n') && /started, version/.test(dnsmasq.text), 'dnsmasq and the listener');
    return bed;
  }

  /** Kernel parameters: DHCP on eth0, and netconsole from the address DHCP will give (it starts first). */
  get kernelParams(): string {
    return `ip=dhcp netconsole=${NETCONSOLE_GUEST_PORT}@${GUEST_ADDRESS}/eth0,${NETCONSOLE_PORT}@${HOST_ADDRESS}/`;
  }

  get prefix(): string[] {
    return ['ip', ...this.ns.execPrefix];
  }

  /** What dnsmasq logged (DHCPDISCOVER/OFFER/REQUEST/ACK lines). */
  get dhcpLog(): string {
    return this.dnsmasq.text;
  }

  /** The kernel messages that arrived over UDP. */
  get netconsole(): string {
    return this.listener.text.replace(/^listening\n/, '');
  }

  leases(): string {
    try {
      return readFileSync(this.leaseFile, 'utf8');
    } catch {
      return '';
    }
  }

  private async waitFor(ready: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`${what} did not start:\n${this.dnsmasq.text}\n${this.listener.text}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    await this.dnsmasq.stop();
    await this.listener.stop();
    this.ns.destroy();
  }
}
