// DHCP inside the namespace: busybox udhcpc with nsroute's own script, which sets the address
// and the default route, and (without --dns) writes the lease's name servers into the
// namespace's resolv.conf in place (the same file stays bind-mounted everywhere).
export function dhcpScript(name: string, writeDns: boolean): string {
  const resolv = `/etc/netns/${name}/resolv.conf`;
  return [
    '#!/bin/sh',
    `# Written by nsroute: the DHCP client script of namespace ${name}.`,
    'case "$1" in',
    '  deconfig) ip -4 addr flush dev "$interface"; ip link set dev "$interface" up ;;',
    '  bound|renew)',
    '    ip -4 addr flush dev "$interface"',
    '    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"',
    '    if [ -n "$router" ]; then set -- $router; ip route replace default via "$1" dev "$interface"; fi',
    ...(writeDns
      ? [
          '    if [ -n "$dns" ]; then',
          `      { echo "# Written by nsroute for namespace ${name}; from the DHCP lease; removed when the namespace goes."`,
          '        n=0; for s in $dns; do [ $n -lt 3 ] && echo "nameserver $s"; n=$((n+1)); done',
          `        echo "options timeout:2 attempts:2"; } > ${resolv}.new && cat ${resolv}.new > ${resolv}; rm -f ${resolv}.new`,
          '    fi',
        ]
      : []),
    '    ;;',
    'esac',
    'exit 0',
    '',
  ].join('\n');
}
