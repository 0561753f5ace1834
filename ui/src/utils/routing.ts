// Routing by model, seen from the admin UI: every model name the native routes can route (from
// the groups' `models` and model redirect rules), the merge of discovered models into a group's
// list, and the route inspector's reasons in the UI language. Pure functions: the pages, the group
// form and the unit tests share them. The rules mirror the data plane's
// (`common/src/snapshot/mod.rs` `serves_model`, `common/src/snapshot/access.rs` `glob_match`).

import type { Schemas } from '@/api/client';
import { cleanList } from '@/utils/groupForm';

export type Group = Schemas['Group'];
export type Protocol = Schemas['ChannelType'];

/** How a group serves a model: listed by name, matched by one of its patterns, or as an alias. */
export type ServeVia = 'name' | 'pattern' | 'alias';

/** A group serving a model. */
export interface ModelServer {
  group_id: number;
  name: string;
  display_name: string;
  channel_type: Protocol;
  priority: number;
  weight: number;
  via: ServeVia;
  /** The pattern that matches (`pattern`) or the model sent upstream (`alias`). */
  detail?: string;
}

/** A routable model name or pattern and the groups that serve it, in routing order. */
export interface RoutableModel {
  model: string;
  /** A glob pattern (`*`, `?`) rather than one name. */
  glob: boolean;
  servers: ModelServer[];
  /** The distinct channels of its servers, in the servers' order. */
  protocols: Protocol[];
}

/** Whether a model entry is a glob pattern. */
export function isGlob(model: string): boolean {
  return model.includes('*') || model.includes('?');
}

/**
 * Glob matching as the data plane does it: `*` any run of characters, `?` one character, the rest
 * literal and case-sensitive; a name without `*` or `?` matches only itself.
 */
export function globMatch(pattern: string, text: string): boolean {
  if (!isGlob(pattern)) return pattern === text;
  const p = [...pattern];
  const t = [...text];
  let pi = 0;
  let ti = 0;
  let star: [number, number] | null = null;
  while (ti < t.length) {
    const c = p[pi];
    if (c === '*') {
      star = [pi, ti];
      pi++;
    } else if (c !== undefined && (c === '?' || c === t[ti])) {
      pi++;
      ti++;
    } else if (star) {
      pi = star[0] + 1;
      ti = star[1] + 1;
      star = [star[0], star[1] + 1];
    } else {
      return false;
    }
  }
  return p.slice(pi).every((c) => c === '*');
}

/** Standard groups reachable on the native routes: those with a non-empty `models` list. */
export function routableGroups(groups: Group[]): Group[] {
  return groups.filter((g) => g.group_type === 'standard' && (g.models ?? []).length > 0);
}

const VIA_RANK: Record<ServeVia, number> = { alias: 0, name: 1, pattern: 2 };

/** Routing order: priority ascending (lower is tried first), then weight descending, then name. */
function byRoutingOrder(a: ModelServer, b: ModelServer): number {
  return a.priority - b.priority || b.weight - a.weight || a.name.localeCompare(b.name);
}

/**
 * Every routable model: the names and patterns in the `models` of every standard group, and the
 * keys of its model redirect rules (aliases). Each comes with the groups that serve it: a name is
 * served by the groups listing it, aliasing it, or matching it with a pattern; a pattern by the
 * groups listing that pattern. Models are sorted by name; groups in routing order.
 */
export function aggregateModels(groups: Group[]): RoutableModel[] {
  const routable = routableGroups(groups);
  const byModel = new Map<string, Map<number, ModelServer>>();
  const server = (g: Group, via: ServeVia, detail?: string): ModelServer => ({
    group_id: g.id,
    name: g.name,
    display_name: g.display_name,
    channel_type: g.channel_type,
    priority: g.priority,
    weight: g.weight,
    via,
    ...(detail !== undefined ? { detail } : {}),
  });
  const add = (model: string, s: ModelServer) => {
    let servers = byModel.get(model);
    if (!servers) byModel.set(model, (servers = new Map()));
    const prev = servers.get(s.group_id);
    if (!prev || VIA_RANK[s.via] < VIA_RANK[prev.via]) servers.set(s.group_id, s);
  };
  for (const g of routable) {
    for (const m of cleanList(g.models)) add(m, server(g, 'name'));
    for (const [from, to] of Object.entries(g.model_redirect_rules ?? {})) {
      const alias = from.trim();
      if (alias) add(alias, server(g, 'alias', to));
    }
  }
  // Names (not patterns) are also served by every group whose pattern matches them.
  for (const model of byModel.keys()) {
    if (isGlob(model)) continue;
    for (const g of routable) {
      const pattern = g.models.find((p) => isGlob(p) && globMatch(p.trim(), model));
      if (pattern) add(model, server(g, 'pattern', pattern.trim()));
    }
  }
  return [...byModel.entries()]
    .map(([model, servers]) => {
      const list = [...servers.values()].sort(byRoutingOrder);
      return { model, glob: isGlob(model), servers: list, protocols: [...new Set(list.map((s) => s.channel_type))] };
    })
    .sort((a, b) => a.model.localeCompare(b.model));
}

/** The models whose name, or one of whose groups' names, contains `query` (any case). */
export function filterModels(models: RoutableModel[], query: string): RoutableModel[] {
  const q = query.trim().toLowerCase();
  if (!q) return models;
  return models.filter(
    (m) => m.model.toLowerCase().includes(q) || m.servers.some((s) => s.name.toLowerCase().includes(q) || s.display_name.toLowerCase().includes(q)),
  );
}

/** A group's models after "Apply" in the discovery dialog: what was there, then the picked ones, without duplicates. */
export function mergeModels(current: string[], picked: string[]): string[] {
  return cleanList([...current, ...picked]);
}

/** How many of `picked` `mergeModels` would add to `current`. */
export function countNew(current: string[], picked: string[]): number {
  return mergeModels(current, picked).length - cleanList(current).length;
}

/** An i18n key under `inspector.reasons` and its parameters. */
export interface ReasonText {
  key: string;
  params: Record<string, string>;
}

// The inspector's reasons as `master/src/api/route.rs` words them. One it does not know is shown
// as the server wrote it.
const REASONS: [RegExp, string, string[]][] = [
  [/^an aggregate group: reachable only through \/proxy\/\{group\}$/, 'aggregate', []],
  [/^its channel \((.+)\) does not serve this protocol$/, 'channel', ['channel']],
  [/^no models configured: reachable only through \/proxy\/\{group\}$/, 'noModels', []],
  [/^does not serve model '(.*)'$/, 'modelNotServed', ['model']],
  [/^the access key's group filter excludes it$/, 'groupFilter', []],
  [/^weight 0: takes no traffic$/, 'weightZero', []],
  [/^every key is blacklisted$/, 'allBlacklisted', []],
  [/^no active keys$/, 'noActiveKeys', []],
  [/^the access key is disabled$/, 'keyDisabled', []],
  [/^the access key has expired$/, 'keyExpired', []],
  [/^the access key may not use the (.+) protocol$/, 'protocolFilter', ['protocol']],
  [/^the access key may not use model '(.*)'$/, 'modelFilter', ['model']],
];

/** The i18n key of a reason the inspector answered, or null for one the UI does not know. */
export function reasonText(reason: string): ReasonText | null {
  for (const [re, key, names] of REASONS) {
    const m = re.exec(reason.trim());
    if (m) return { key, params: Object.fromEntries(names.map((n, i) => [n, m[i + 1] ?? ''])) };
  }
  return null;
}

/** Each candidate's share of its tier's traffic, in percent (weights within one tier). */
export function tierShares(candidates: Pick<Schemas['RouteCandidate'], 'tier' | 'weight'>[]): number[] {
  const totals = new Map<number, number>();
  for (const c of candidates) totals.set(c.tier, (totals.get(c.tier) ?? 0) + Math.max(0, c.weight));
  return candidates.map((c) => {
    const total = totals.get(c.tier) ?? 0;
    return total > 0 ? (Math.max(0, c.weight) * 100) / total : 0;
  });
}
