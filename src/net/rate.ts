import { UserError } from '../errors.js';

// Bandwidth caps (`--rate-down RATE`, `--rate-up RATE`): tc's rate syntax, parsed here so a
// typo is refused before any change, and rendered as one token bucket (tbf) per direction.
//   down: the egress of the host's end of the veth (what the host sends into the namespace);
//   up:   the egress of the namespace's end (what the namespace sends out), shaped where it
//         is sent. Shaping at the sender queues instead of dropping: TCP there slows down by
//         backpressure (TCP small queues) and keeps its full window, where policing the
//         host end's ingress would drop and make TCP saw-tooth well below the cap; and it
//         needs no ifb device (a module some kernels and containers lack). The qdisc lives in
//         the namespace and goes with it.

const UNITS: Record<string, number> = {
  '': 1,
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  tbit: 1e12,
  kibit: 1024,
  mibit: 1024 ** 2,
  gibit: 1024 ** 3,
  tibit: 1024 ** 4,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
  tbps: 8e12,
  kibps: 8 * 1024,
  mibps: 8 * 1024 ** 2,
  gibps: 8 * 1024 ** 3,
  tibps: 8 * 1024 ** 4,
};

export const MIN_RATE_BIT = 8_000; // below this a tbf's buckets are mostly rounding
export const MAX_RATE_BIT = 1e12;

// A rate as tc reads it ("20mbit", "1.5gbit", "500kbps") -> bits per second, as "Nbit".
export function parseRate(text: string, what: string): string {
  const m = /^(\d+(?:\.\d+)?)([a-z]*)$/i.exec(text.trim());
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || UNITS[unit] === undefined) {
    throw new UserError(`${what}: ${JSON.stringify(text)} is not a rate`, "use tc's syntax: a number and a unit, e.g. 20mbit, 500kbit, 2mbps (bytes)");
  }
  const bits = Math.round(Number(m[1]) * UNITS[unit]!);
  if (bits < MIN_RATE_BIT || bits > MAX_RATE_BIT) {
    throw new UserError(`${what}: ${text} is outside ${MIN_RATE_BIT / 1000}kbit-${MAX_RATE_BIT / 1e9}gbit`, 'give a rate in that range');
  }
  return `${bits}bit`;
}

export function rateBits(rate: string): number {
  return Number(rate.replace(/bit$/, ''));
}

// Bytes the bucket holds: 20 ms at the rate, at least 16 KiB (a few full-size packets; tbf
// splits larger GSO packets to fit). What a transfer can exceed the rate by, once.
export function burstBytes(rate: string): number {
  return Math.max(16 * 1024, Math.ceil(rateBits(rate) / 8 / 50));
}

// `tc` arguments (after `tc`, or `tc -n NETNS`) setting a device's root qdisc to the cap.
export function tbfArgs(dev: string, rate: string): string[] {
  return ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', String(burstBytes(rate)), 'latency', '100ms'];
}
