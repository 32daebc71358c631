// A published port and how it is written ([HOSTADDR:]HOSTPORT:PORT/PROTO): apart from
// publish.ts (address checks with ip-cidr, nft rules) so that `list` and `status` print ports
// without loading those.

export type PublishProto = 'tcp' | 'udp';

export interface PublishedPort {
  hostAddr?: string; // absent: every address of the host
  hostPort: number;
  port: number;
  proto: PublishProto;
}

export function publishSpec(p: PublishedPort): string {
  return `${p.hostAddr ? `${p.hostAddr}:` : ''}${p.hostPort}:${p.port}/${p.proto}`;
}
