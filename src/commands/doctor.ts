// `nsroute doctor [--json]`: what this machine can and cannot do for nsroute, one line each
// with the fix. Exit 0 when nsroute can work here (warnings aside), 4 otherwise.
import { gatherDoctorFacts } from '../doctor/gather.js';
import { evaluateDoctor, renderDoctor } from '../doctor/evaluate.js';
import { requireRoot } from './options.js';

export const DOCTOR_FAILED = 4;

export async function runDoctor(opts: { json?: boolean }): Promise<number> {
  requireRoot({ network: false });
  const report = evaluateDoctor(await gatherDoctorFacts());
  process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : renderDoctor(report));
  return report.ok ? 0 : DOCTOR_FAILED;
}
