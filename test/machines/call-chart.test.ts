// The committed Mermaid picture of the CP-01 chart (docs/call-chart.md, and README.md's block
// when it has one) must match the machine definition: scripts/diagram.ts renders it, and
// these tests fail when someone changes machines/call.machine.ts without `npm run diagram`.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AnyStateNode } from 'xstate';
import { callMachine } from '../../machines/call.machine.js';
import { CHART_DOC_PATH, README_END, README_PATH, README_START, renderMermaid } from '../../scripts/diagram.js';
import { CALL_STATES } from '../../machines/call.types.js';

const STALE = 'is out of date with machines/call.machine.ts: run `npm run diagram` and commit the result';

/** The body of the first ```mermaid block in `text`, or null. */
function mermaidBody(text: string): string | null {
  const match = /```mermaid\n([\s\S]*?)```/.exec(text.replace(/\r\n/g, '\n'));
  return match?.[1] ?? null;
}

function readmeBlock(): string | null {
  if (!existsSync(README_PATH)) return null;
  const readme = readFileSync(README_PATH, 'utf8');
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END, start + README_START.length);
  if (start === -1 || end === -1) return null;
  return readme.slice(start + README_START.length, end);
}

function allNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((child) => allNodes(child as AnyStateNode))];
}

const diagram = renderMermaid();
const lines = diagram.split('\n').map((line) => line.trim());
const edgeLines = lines.filter((line) => line.includes(' --> '));
const commentLines = lines.filter((line) => line.startsWith('%%'));

describe('call chart diagram (scripts/diagram.ts)', () => {
  it('the committed diagram in docs/call-chart.md matches the machine definition', () => {
    expect(existsSync(CHART_DOC_PATH), `docs/call-chart.md is missing: run \`npm run diagram\``).toBe(true);
    const committed = mermaidBody(readFileSync(CHART_DOC_PATH, 'utf8'));
    expect(committed, `docs/call-chart.md has no mermaid block: run \`npm run diagram\``).not.toBeNull();
    expect(committed, `docs/call-chart.md ${STALE}`).toBe(diagram);
  });

  it('the diagram between the README.md markers matches the machine definition', () => {
    const block = readmeBlock() ?? '';
    expect(mermaidBody(block), `README.md call chart block ${STALE}`).toBe(diagram);
  });

  it('renders deterministically', () => {
    expect(renderMermaid()).toBe(diagram);
  });

  it('every public state appears in the diagram', () => {
    const drawn = new Set(edgeLines.flatMap((line) => /^(\S+) --> (\S+)/.exec(line)?.slice(1, 3) ?? []));
    for (const line of lines) {
      const composite = /^state (\S+) \{$/.exec(line)?.[1];
      if (composite) drawn.add(composite);
    }
    for (const state of CALL_STATES) expect(drawn.has(state), `state "${state}" is missing from the diagram`).toBe(true);
  });

  it('every event type handled by the chart appears either on an edge or in the targetless comment', () => {
    const onEdges = new Set(edgeLines.map((line) => /--> \S+ : (\S+)/.exec(line)?.[1]).filter(Boolean));
    // Entries of the targetless comment: `%%   <state>: <event>, <event>`.
    const inComment = new Set(
      commentLines.flatMap((line) => /^%%\s{3}.+?: (.+)$/.exec(line)?.[1]?.split(', ') ?? []),
    );
    const handled = new Set(allNodes(callMachine.root).flatMap((node) => [...node.transitions.keys()]));
    expect(handled.size).toBeGreaterThan(0);
    for (const event of handled) {
      expect(onEdges.has(event) || inComment.has(event), `event "${event}" is neither on an edge nor in the comment`).toBe(true);
    }
    // The root-level handler is in the comment: it is targetless.
    expect(inComment.has('livekit.room_started')).toBe(true);
    // Eventless transitions are drawn as `always`.
    expect(onEdges.has('always')).toBe(true);
  });

  it('shows the inner guards of higher-order guards', () => {
    expect(diagram).toContain('attempting --> ended : dial.failed [isCurrentAttempt and isCalleeOutcome]');
  });

  it('is valid-looking Mermaid', () => {
    expect(diagram.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(lines).toContain('[*] --> created');
    expect(lines).toContain('ended --> [*]');
    expect(lines).toContain('failed --> [*]');
    expect(lines).toContain('state dialing {');
    expect(lines).toContain('[*] --> attempting');
    expect(lines.filter((line) => line.endsWith('{')).length).toBe(lines.filter((line) => line === '}').length);
    for (const line of edgeLines) {
      // Mermaid state ids stop at ':', whitespace and '-'; an edge label stops at ':' or ';'.
      expect(line, 'malformed edge line').toMatch(/^(\[\*\]|[^:\s\-{]+) --> (\[\*\]|[^:\s\-{]+)( : [^:;]+)?$/);
    }
    // Mermaid's lexer reads any line containing "direction LR" (etc.) as a direction statement.
    expect(lines.some((line) => /direction\s+(TB|BT|RL|LR)/i.test(line))).toBe(false);
  });
});
