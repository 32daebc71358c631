type Json = Record<string, unknown>;

// A route as `ip -j route show` gives it, back as `ip route replace` arguments (no dev).
export function routeSpec(r: Json): string {
  const parts: string[] = [];
  if (typeof r.type === 'string' && r.type !== 'unicast') parts.push(r.type);
  parts.push(String(r.dst));
  if (typeof r.gateway === 'string') parts.push('via', r.gateway);
  if (r.table !== undefined && String(r.table) !== 'main' && String(r.table) !== '254') parts.push('table', String(r.table));
  if (typeof r.protocol === 'string') parts.push('proto', r.protocol);
  if (typeof r.scope === 'string' && r.scope !== 'global') parts.push('scope', r.scope);
  if (typeof r.metric === 'number') parts.push('metric', String(r.metric));
  if (typeof r.prefsrc === 'string') parts.push('src', r.prefsrc);
  return parts.join(' ');
}
