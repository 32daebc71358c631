// Two or three real examples per command, shown at the end of `--help` and in the man page's
// EXAMPLES (scripts/man.mjs reads them through `nsroute __spec`): one list, never two.
export const PROGRAM_EXAMPLES: readonly string[] = [
  'sudo nsroute exec slow -- aptitude safe-upgrade   # via the profile /etc/nsroute/slow.toml',
  'sudo nsroute exec novpn --via 192.168.1.1 --dev wlan0 --dns 192.168.1.1 -- spotify',
  'sudo nsroute doctor                               # can this machine run nsroute?',
];

export const COMMAND_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  exec: [
    'sudo nsroute exec slow -- aptitude safe-upgrade',
    'sudo nsroute exec office --dev tun0 --dns 10.8.0.1 -- ssh intranet-host',
    'sudo nsroute exec lan --mode macvlan --uplink eth0 --dhcp -- curl https://example.org',
    'sudo nsroute exec novpn --mode cgroup --via 192.168.1.1 -- spotify   # no namespace: keeps localhost',
  ],
  shell: ['sudo nsroute shell slow', 'sudo nsroute shell filtered --dns 192.168.1.53'],
  up: ['sudo nsroute up slow', 'sudo nsroute up lan --mode bridge --uplink eth0 --address 192.168.1.60/24 --via 192.168.1.1', 'sudo nsroute up slow --json', 'sudo nsroute up dropbox --mode replies --dev eth1 --via 203.0.113.1   # answer by the way connections came'],
  down: ['sudo nsroute down slow', 'sudo nsroute down slow --force   # ends the commands still inside'],
  list: ['sudo nsroute list', "sudo nsroute list --json | jq -r '.[].name'"],
  status: ['sudo nsroute status slow', 'sudo nsroute status slow --json'],
  check: ['sudo nsroute check slow', 'sudo nsroute check slow --json --name example.org'],
  enable: ['sudo nsroute enable slow          # at every boot from now on', 'sudo nsroute enable slow --now    # and bring it up now'],
  disable: ['sudo nsroute disable slow', 'sudo nsroute disable slow --now   # and take it down now'],
  attach: ['sudo nsroute attach slow transmission-daemon && sudo systemctl restart transmission-daemon', 'sudo nsroute attach slow restic-backup --json'],
  detach: ['sudo nsroute detach slow transmission-daemon', 'sudo nsroute detach slow restic-backup --json'],
  watch: ['sudo nsroute watch', 'sudo nsroute watch slow --json'],
  move: ['sudo nsroute move novpn 4242 --tree   # a running program and its children', 'sudo nsroute move --out 4242'],
  gc: ['sudo nsroute gc', 'sudo nsroute gc --json'],
  allow: ['sudo nsroute allow slow alice %netdev   # then, as alice: nsroute exec slow -- CMD', 'sudo nsroute allow   # after editing allow = [...] by hand'],
  disallow: ['sudo nsroute disallow slow alice', 'sudo nsroute disallow slow %netdev --json'],
  doctor: ['sudo nsroute doctor', 'sudo nsroute doctor --json | jq \'.checks[] | select(.status != "ok")\''],
  completion: [
    'nsroute completion bash | sudo tee /etc/bash_completion.d/nsroute',
    'nsroute completion zsh > "${fpath[1]}/_nsroute"',
    'nsroute completion fish > ~/.config/fish/completions/nsroute.fish',
  ],
};

export function examplesText(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}
