/**
 * What `npm run bench` compares: each variant is its own nginx (1 worker) in front of the same
 * backends nginx, so they differ only in what routes the request.
 */
import { editDocument } from "../harness/rules.ts";
import { type Pattern, renderSite } from "../node-src/nginx-conf.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";
import { flag, setWeight } from "../node-src/rules/edit.ts";

/** A rules document for a variant: the default canary's weight, ranges and user ids, under its key_prefix. */
export interface VariantRules {
  prefix: string;
  weight?: number;
  ranges?: string[];
  users?: string[];
}

export interface VariantPorts {
  listen: number;
  stable: number;
  canary: number;
  memcached: number;
}

export interface Variant {
  name: string;
  about: string;
  /** http-context lines of this variant's nginx. */
  http: (luaPaths: string[], p: VariantPorts) => string[];
  /** A wrk Lua script (request generation), if the variant needs other clients or headers. */
  wrkScript?: string;
  /** memcached keys to set before the run (per-IP seed keys). */
  keys?: Record<string, string>;
  /** The rules document to write before the run. */
  rules?: VariantRules;
}

/** Longer than cache_ttl_ms (500 ms) and a load: a router has loaded a revision written before it. */
export const RULES_LOADED_MS = 1200;

/** Writes the variant's rules document (one revision), if it has one: true when it wrote one. */
export async function writeVariantRules(address: string, v: Variant): Promise<boolean> {
  const r = v.rules;
  if (r === undefined) return false;
  await editDocument(address, r.prefix, `bench ${v.name}`, (doc) => {
    if (r.weight !== undefined) setWeight(doc, "canary", r.weight);
    for (const cidr of r.ranges ?? []) flag(doc, "range", cidr, "canary", 0);
    for (const user of r.users ?? []) flag(doc, "user", user, "canary", 0);
  });
  return true;
}

const UPSTREAMS = (p: VariantPorts) => [
  `upstream client { server 127.0.0.1:${p.stable}; keepalive 32; }`,
  `upstream client_test { server 127.0.0.1:${p.canary}; keepalive 32; }`,
];
const PROXY = ["proxy_http_version 1.1;", 'proxy_set_header Connection "";'];

/** Plain proxy_pass to the stable backend, no Lua: what every ratio is taken against. */
export function plain(listen = "") {
  return (_: string[], p: VariantPorts) => [
    ...UPSTREAMS(p),
    "server {",
    `    listen 127.0.0.1:${p.listen}${listen};`,
    "    location / {",
    ...PROXY.map((l) => `        ${l}`),
    "        proxy_pass http://client;",
    "    }",
    "}",
  ];
}

/** The router's drop-in site with these configure() options; `listen` adds listen parameters (reuseport). */
export function router(options: Record<string, LuaValue>, listen = "", counters = true, pattern: Pattern = "exec") {
  return (luaPaths: string[], p: VariantPorts) =>
    renderSite({
      pattern,
      luaPaths,
      options: { memcached: { host: "127.0.0.1", port: p.memcached }, ...options },
      listen: [`127.0.0.1:${p.listen}${listen}`],
      stable: [`127.0.0.1:${p.stable}`],
      canary: [`127.0.0.1:${p.canary}`],
      proxy: PROXY,
      counters,
    });
}

/**
 * Seed 004's script, as published: only the module path and memcached's port adapted. It keeps
 * the seed's global write (clientIP), its connection per request and its error pages.
 */
function seedScript(memcachedPort: number): string[] {
  return [
    "content_by_lua '",
    '    clientIP = ngx.req.get_headers()["X-Real-IP"]',
    "    if clientIP == nil then",
    '        clientIP = ngx.req.get_headers()["x_forwarded_for"]',
    "    end",
    "    if clientIP == nil then",
    "        clientIP = ngx.var.remote_addr",
    "    end",
    '        local memcached = require "resty.memcached"',
    "        local memc, err = memcached:new()",
    "        if not memc then",
    '            ngx.say("failed to instantiate memc: ", err)',
    "            return",
    "        end",
    `        local ok, err = memc:connect("127.0.0.1", ${memcachedPort})`,
    "        if not ok then",
    '            ngx.say("failed to connect: ", err)',
    "            return",
    "        end",
    "        local res, flags, err = memc:get(clientIP)",
    "        if err then",
    '            ngx.say("failed to get clientIP ", err)',
    "            return",
    "        end",
    '        if res == "1" then',
    '            ngx.exec("@client_test")',
    "            return",
    "        end",
    '         ngx.exec("@client")',
    "';",
  ];
}

/**
 * A wrk script sending `count` requests in turn, built once in init() by `headers(i)` (a Lua
 * expression of i giving a header table): per request wrk only indexes a table, so generating
 * requests takes as little of the shared CPU as a plain GET does.
 */
function cycle(count: number, headers: string): string {
  return `
local requests, n = {}, 0
init = function()
  for i = 0, ${count - 1} do requests[i + 1] = wrk.format(nil, nil, ${headers}) end
end
request = function()
  n = n % ${count} + 1
  return requests[n]
end
`;
}

/**
 * Clients through X-Real-IP from a trusted peer, counting through 198.18.0.0/15 (the benchmarking
 * range, RFC 2544): `count` distinct ones in turn, or all 131,072 (a new client every request, as
 * far as a 500 ms cache can tell).
 */
export function cyclingClients(count = 131072): string {
  return cycle(
    count,
    '{ ["X-Real-IP"] = string.format("198.%d.%d.%d", 18 + math.floor(i / 65536), math.floor(i / 256) % 256, i % 256) }',
  );
}

/** The address cyclingClients() sends as client number i. */
export function cyclingClient(i: number): string {
  return `198.${18 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
}

/** Every rule on: 1,000 user ids (some flagged), an override header on every 50th request, ranges and weight 50. */
const ALL_RULES_SCRIPT = cycle(1000, '{ ["X-User-Id"] = "user" .. i, ["X-Gray"] = (i % 50 == 49) and "never" or nil }');

export const VARIANTS: Variant[] = [
  {
    name: "plain",
    about: "plain proxy_pass, no Lua",
    http: plain(),
  },
  {
    name: "seed",
    about: "seed 004's script as published",
    http: (luaPaths, p) => [
      `lua_package_path "${luaPaths.map((d) => `${d}/?.lua`).join(";")};;";`,
      ...UPSTREAMS(p),
      "server {",
      `    listen 127.0.0.1:${p.listen};`,
      "    location / {",
      ...seedScript(p.memcached).map((l) => `        ${l}`),
      "    }",
      "    location @client { proxy_pass http://client; }",
      "    location @client_test { proxy_pass http://client_test; }",
      "}",
    ],
  },
  {
    name: "split_clients",
    about:
      "nginx's own split_clients (10 % by client address) to a variable upstream, no Lua: the C floor of a sticky split",
    http: (_, p) => [
      ...UPSTREAMS(p),
      'split_clients "${remote_addr}" $gray_split { 10% client_test; * client; }',
      "server {",
      `    listen 127.0.0.1:${p.listen};`,
      `    location / { ${PROXY.join(" ")} proxy_pass http://$gray_split; }`,
      "}",
    ],
  },
  {
    name: "floor",
    about:
      "access_by_lua doing nothing but ngx.exec, plus an empty log_by_lua: what any router built that way pays (the exec pattern's floor)",
    http: (_, p) => [
      ...UPSTREAMS(p),
      "server {",
      `    listen 127.0.0.1:${p.listen};`,
      "    log_by_lua_block { }",
      '    location / { access_by_lua_block { ngx.exec("@client") } }',
      `    location @client { ${PROXY.join(" ")} proxy_pass http://client; }`,
      "}",
    ],
  },
  { name: "cached", about: "router by ngx.exec (route()), the client cached (steady state)", http: router({}) },
  {
    name: "floor-var",
    about:
      "set + an empty access_by_lua + an empty log_by_lua + proxy_pass to the variable: the variable pattern's floor",
    http: (_, p) => [
      ...UPSTREAMS(p),
      "server {",
      `    listen 127.0.0.1:${p.listen};`,
      "    log_by_lua_block { }",
      `    location / { set $gray_upstream "client"; access_by_lua_block { } ${PROXY.join(" ")} proxy_pass http://$gray_upstream; }`,
      "}",
    ],
  },
  {
    name: "cached-var",
    about: "router by variable (route_upstream() + proxy_pass http://$gray_upstream), the client cached",
    http: router({}, "", true, "upstream"),
  },
  {
    name: "uncounted",
    about: "router, the client cached, without the log_by_lua line (no route counters)",
    http: router({}, "", false),
  },
  {
    name: "miss",
    about: "router, a new client every request (memcached lookup)",
    http: router({ trusted_proxies: ["127.0.0.1"] }),
    wrkScript: cyclingClients(),
  },
  {
    name: "rules",
    about: "router, all rules on (override, user id, ranges, weight 50)",
    // Its own key_prefix: the rules document it writes must not reach the other variants.
    http: router({
      key_prefix: "rules:",
      override_header: "X-Gray",
      user_header: "X-User-Id",
      ranges: ["203.0.113.0/24", "2001:db8::/32"],
    }),
    wrkScript: ALL_RULES_SCRIPT,
    rules: {
      prefix: "rules:",
      weight: 50,
      ranges: ["198.51.100.0/24", "192.0.2.0/24"],
      users: ["user7", "user77"],
    },
  },
];
