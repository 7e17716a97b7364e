// Renders the CP-01 call chart (machines/call.machine.ts) as a Mermaid `stateDiagram-v2` by
// walking the machine definition, so the picture can never drift from the chart: the test
// test/machines/call-chart.test.ts fails when the committed diagram is stale.
//
// `npm run diagram` writes docs/call-chart.md and, when README.md exists and carries the
// markers below, rewrites the block between them. Importing this module writes nothing.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { callMachine } from '../machines/call.machine.js';
import { FINAL_STATES } from '../machines/call.types.js';

export const README_START = '<!-- call-chart:start -->';
export const README_END = '<!-- call-chart:end -->';

const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CHART_DOC_PATH = join(ROOT_DIR, 'docs', 'call-chart.md');
export const README_PATH = join(ROOT_DIR, 'README.md');

interface TransitionLike {
  eventType: string;
  guard?: unknown;
  target?: readonly AnyStateNode[] | undefined;
  source: AnyStateNode;
}

/**
 * The readable name of a guard as the definition holds it: a named guard (`'isOutbound'`), a
 * guard object (`{ type, params }` → its type), or a higher-order guard from `and`/`or`/`not`,
 * which xstate builds as a function named after the operator carrying its operands in `.guards`.
 */
export function guardName(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const operands = (guard as { guards?: unknown }).guards;
    if (Array.isArray(operands)) {
      const names = operands.map((g) => {
        const name = guardName(g);
        return /\s/.test(name) ? `(${name})` : name;
      });
      if (guard.name === 'not') return `not ${names[0] ?? '?'}`;
      return names.join(` ${guard.name || 'and'} `);
    }
    return guard.name || 'inline guard';
  }
  if (guard && typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  return String(guard);
}

function label(t: TransitionLike): string {
  const event = t.eventType === '' ? 'always' : t.eventType;
  return t.guard === undefined ? event : `${event} [${guardName(t.guard)}]`;
}

/** Every transition of a state node in definition order: `on` (by event) first, then `always`. */
function transitionsOf(node: AnyStateNode): TransitionLike[] {
  const list: TransitionLike[] = [];
  for (const candidates of node.transitions.values()) list.push(...(candidates as TransitionLike[]));
  list.push(...((node.always ?? []) as TransitionLike[]));
  return list;
}

/** Child state nodes in definition order. */
function childrenOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states) as AnyStateNode[];
}

/** The node and all its descendants, depth first in definition order. */
function walk(node: AnyStateNode): AnyStateNode[] {
  return [node, ...childrenOf(node).flatMap(walk)];
}

function isDescendant(node: AnyStateNode, ancestor: AnyStateNode): boolean {
  for (let n = node.parent; n; n = n.parent) if (n === ancestor) return true;
  return false;
}

/** The deepest compound state that contains both ends of an edge: the block it is drawn in. */
function edgeScope(source: AnyStateNode, target: AnyStateNode): AnyStateNode {
  for (let scope = source.parent; scope; scope = scope.parent) {
    if (isDescendant(target, scope)) return scope;
  }
  return source.machine.root;
}

/** `dialing.attempting`, or `(root)` for the machine itself. */
function statePath(node: AnyStateNode): string {
  return node.path.length === 0 ? `${node.id} (root)` : node.path.join('.');
}

export function renderMermaid(machine: AnyStateMachine = callMachine): string {
  const root = machine.root as AnyStateNode;
  const nodes = walk(root);

  // Mermaid state ids are global: draw each state by its key and refuse ambiguous charts.
  const seen = new Map<string, AnyStateNode>();
  for (const node of nodes.slice(1)) {
    const other = seen.get(node.key);
    if (other) throw new Error(`diagram: state key "${node.key}" is used by both ${other.id} and ${node.id}`);
    seen.set(node.key, node);
  }

  const edges = new Map<AnyStateNode, string[]>(); // scope → edge lines
  const targetless: string[] = [];
  for (const node of nodes) {
    const notDrawn: string[] = [];
    for (const t of transitionsOf(node)) {
      const targets = (t.target ?? []).filter((target) => target !== node);
      if (targets.length === 0) {
        const event = t.eventType === '' ? 'always' : t.eventType;
        if (!notDrawn.includes(event)) notDrawn.push(event);
        continue;
      }
      for (const target of targets) {
        const scope = edgeScope(node, target);
        const lines = edges.get(scope) ?? [];
        lines.push(`${node.key} --> ${target.key} : ${label(t)}`);
        edges.set(scope, lines);
      }
    }
    if (notDrawn.length > 0) targetless.push(`${statePath(node)}: ${notDrawn.join(', ')}`);
  }

  // A compound state's block: its initial state, nested compound blocks (declared before any
  // edge names their children, so Mermaid places those children inside), its edges, its finals.
  const renderScope = (scope: AnyStateNode, indent: string): string[] => {
    const lines: string[] = [];
    const initial = scope.initial?.target?.[0] as AnyStateNode | undefined;
    if (initial) lines.push(`${indent}[*] --> ${initial.key}`);
    for (const child of childrenOf(scope)) {
      if (child.type === 'compound' || child.type === 'parallel') {
        lines.push(`${indent}state ${child.key} {`, ...renderScope(child, `${indent}  `), `${indent}}`);
      }
    }
    lines.push(...(edges.get(scope) ?? []).map((line) => `${indent}${line}`));
    // Final for the call: xstate `final` states, and the public final states (ended, failed), which
    // are not xstate-final because a recording may still end after the call (machines/call.machine.ts).
    for (const child of childrenOf(scope)) {
      if (child.type === 'final' || (scope === root && (FINAL_STATES as readonly string[]).includes(child.key))) lines.push(`${indent}${child.key} --> [*]`);
    }
    return lines;
  };

  const lines = [
    'stateDiagram-v2',
    `  %% Generated from machines/call.machine.ts (${root.id}) by \`npm run diagram\`; do not edit by hand.`,
  ];
  if (targetless.length > 0) {
    lines.push('  %% Targetless transitions (actions only, not drawn), per state:');
    lines.push(...targetless.map((entry) => `  %%   ${entry}`));
  }
  lines.push(...renderScope(root, '  '));
  return `${lines.join('\n')}\n`;
}

export function mermaidBlock(diagram = renderMermaid()): string {
  return '```mermaid\n' + diagram + '```\n';
}

export function chartDocument(diagram = renderMermaid()): string {
  return [
    '# Call lifecycle chart',
    '',
    'Generated by `npm run diagram` from `machines/call.machine.ts`; edit the machine, not this file.',
    '',
    mermaidBlock(diagram),
  ].join('\n');
}

/** README.md with the block between the markers replaced, or null without both markers. */
export function updateReadme(readme: string, diagram = renderMermaid()): string | null {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END, start + README_START.length);
  if (start === -1 || end === -1) return null;
  return `${readme.slice(0, start + README_START.length)}\n${mermaidBlock(diagram)}${readme.slice(end)}`;
}

function main(): void {
  const diagram = renderMermaid();
  mkdirSync(dirname(CHART_DOC_PATH), { recursive: true });
  writeFileSync(CHART_DOC_PATH, chartDocument(diagram));
  console.log(`wrote ${CHART_DOC_PATH}`);
  if (existsSync(README_PATH)) {
    const updated = updateReadme(readFileSync(README_PATH, 'utf8'), diagram);
    if (updated === null) {
      console.log(`README.md has no ${README_START} … ${README_END} markers; left unchanged`);
    } else {
      writeFileSync(README_PATH, updated);
      console.log(`updated the call chart block in ${README_PATH}`);
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
