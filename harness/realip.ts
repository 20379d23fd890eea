/**
 * nginx's own realip module as the oracle for the client address behind trusted proxies: a server
 * in the router's nginx, configured as the router is (set_real_ip_from per trusted CIDR,
 * real_ip_recursive on), that answers the $remote_addr realip made of a request.
 */
import { type Ask, get } from "./http.ts";
import type { StackPorts } from "./stack.ts";

/** httpExtra for a RouterStack: /xri reads X-Real-IP, /xff reads X-Forwarded-For, on ports.extra (IPv4 and ::1). */
export function realipOracle(trusted: string[]): (ports: StackPorts) => string[] {
  const realip = (header: string) => [
    ...trusted.map((c) => `set_real_ip_from ${c};`),
    `real_ip_header ${header};`,
    "real_ip_recursive on;",
  ];
  return (ports) => [
    "server {",
    `    listen 127.0.0.1:${ports.extra};`,
    `    listen [::1]:${ports.extra};`,
    "    default_type text/plain;",
    // A content handler, not "return": return runs in the rewrite phase, before location-level realip.
    `    location /xri { ${realip("X-Real-IP").join(" ")} content_by_lua_block { ngx.print(ngx.var.remote_addr) } }`,
    `    location /xff { ${realip("X-Forwarded-For").join(" ")} content_by_lua_block { ngx.print(ngx.var.remote_addr) } }`,
    "}",
  ];
}

function oracleUrl(ports: StackPorts, from: string): string {
  return from === "::1" ? `http://[::1]:${ports.extra}` : `http://127.0.0.1:${ports.extra}`;
}

/**
 * What realip makes of the request: X-Real-IP if it moves the address, else X-Forwarded-For.
 * (When X-Real-IP names the peer itself, realip's answer cannot tell that from "no address":
 * callers avoid that case.)
 */
export async function realipAddress(
  ports: StackPorts,
  ask: Ask & { from: string },
  sendsRealIp: boolean,
): Promise<string> {
  const base = oracleUrl(ports, ask.from);
  const viaRealIp = (await get(`${base}/xri`, ask)).body;
  if (sendsRealIp && viaRealIp !== ask.from) return viaRealIp;
  return (await get(`${base}/xff`, ask)).body;
}
