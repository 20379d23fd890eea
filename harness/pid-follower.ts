/**
 * How a daemonizing server (nginx) runs under the harness: its master is named by a pid file,
 * not by the process we spawn, because a binary upgrade (USR2) starts a new master that outlives
 * the old one. So the runtime spawns an init that reaps orphans (tini as a subreaper; in a
 * container, Docker's own init) running a small shell follower: it starts the server, then lives
 * as long as the process in the pid file or in nginx's `<pid file>.oldbin` lives, and passes a
 * stop signal on to them. A container thus outlives the old master's exit, and a new master
 * re-parented on the old one's exit is reaped, never left a zombie.
 */

const FOLLOWER = `
pidfile=$1; bin=$(command -v "$2"); shift 2
# By absolute path: nginx re-executes its argv[0] on USR2, and execve does not search PATH.
"$bin" "$@" || exit
masters() { cat "$pidfile" "$pidfile.oldbin" 2>/dev/null; }
alive() { for p in $(masters); do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
trap 'kill -QUIT $(masters) 2>/dev/null' QUIT
trap 'kill -TERM $(masters) 2>/dev/null' TERM INT
# The daemon writes its pid file just after it forks away from the command above.
i=0; until [ -s "$pidfile" ] || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done
while alive; do sleep 0.1; done
`;

/** The follower's command line: sh -c FOLLOWER with the pid file and the server's own command. */
export function followPidFile(pidFile: string, command: string[]): string[] {
  return ["sh", "-c", FOLLOWER, "follow", pidFile, ...command];
}
