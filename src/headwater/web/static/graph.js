// Draws a flow graph (CONTRACTS §2) as SVG with a layered layout computed here:
// layers by longest path from the start, order inside a layer by the barycentre of
// the nodes above, edges as curves. Problems found by validation are drawn next to
// the node they concern.
import { svg } from "./dom.js";

const NODE_W = 176;
const NODE_H = 52;
const GAP_X = 28;
const GAP_Y = 64;
const PAD = 24;

function truncate(text, max) {
  const value = String(text ?? "");
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

export function layout(graph) {
  const rawNodes = Array.isArray(graph?.nodes) ? graph.nodes : [];
  const nodes = [];
  const byId = new Map();
  for (const raw of rawNodes) {
    if (!raw || typeof raw !== "object" || typeof raw.id !== "string" || byId.has(raw.id)) continue;
    const node = { id: raw.id, type: typeof raw.type === "string" ? raw.type : "?", raw, layer: 0, order: 0 };
    nodes.push(node);
    byId.set(node.id, node);
  }
  const edges = [];
  for (const raw of Array.isArray(graph?.edges) ? graph.edges : []) {
    if (!raw || !byId.has(raw.source) || !byId.has(raw.target) || raw.source === raw.target) continue;
    edges.push({ source: raw.source, target: raw.target, branch: raw.branch, back: false });
  }
  // Edges closing a cycle are marked (drawn apart) and left out of the layering.
  const state = new Map();
  const outgoing = new Map(nodes.map((n) => [n.id, []]));
  edges.forEach((e) => outgoing.get(e.source).push(e));
  const visit = (id) => {
    state.set(id, 1);
    for (const edge of outgoing.get(id)) {
      const s = state.get(edge.target);
      if (s === 1) edge.back = true;
      else if (!s) visit(edge.target);
    }
    state.set(id, 2);
  };
  const starts = nodes.filter((n) => n.type === "start");
  [...starts, ...nodes].forEach((n) => { if (!state.get(n.id)) visit(n.id); });
  const forward = edges.filter((e) => !e.back);
  // Longest-path layers (Kahn order over the forward edges).
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  forward.forEach((e) => indegree.set(e.target, indegree.get(e.target) + 1));
  const queue = nodes.filter((n) => indegree.get(n.id) === 0);
  while (queue.length) {
    const node = queue.shift();
    for (const edge of outgoing.get(node.id)) {
      if (edge.back) continue;
      const target = byId.get(edge.target);
      target.layer = Math.max(target.layer, node.layer + 1);
      indegree.set(target.id, indegree.get(target.id) - 1);
      if (indegree.get(target.id) === 0) queue.push(target);
    }
  }
  const layers = [];
  nodes.forEach((n) => { (layers[n.layer] ||= []).push(n); });
  for (let i = 0; i < layers.length; i += 1) layers[i] ||= [];
  layers.forEach((layer) => layer.forEach((n, i) => { n.order = i; }));
  const predecessors = new Map(nodes.map((n) => [n.id, []]));
  forward.forEach((e) => predecessors.get(e.target).push(byId.get(e.source)));
  for (let pass = 0; pass < 2; pass += 1) {
    for (let i = 1; i < layers.length; i += 1) {
      const centre = (n) => {
        const above = predecessors.get(n.id);
        return above.length ? above.reduce((sum, p) => sum + p.order, 0) / above.length : n.order;
      };
      layers[i].sort((a, b) => centre(a) - centre(b));
      layers[i].forEach((n, index) => { n.order = index; });
    }
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  layers.forEach((layer, depth) => {
    const rowWidth = layer.length * NODE_W + (layer.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    layer.forEach((n, i) => {
      n.x = left + i * (NODE_W + GAP_X);
      n.y = PAD + depth * (NODE_H + GAP_Y);
    });
  });
  const height = PAD * 2 + Math.max(1, layers.length) * NODE_H + Math.max(0, layers.length - 1) * GAP_Y + 20;
  return { nodes, edges, byId, width, height };
}

// `problems`: [{node_id, message}] from POST /v1/apps/validate.
export function drawGraph(graph, problems = []) {
  const { nodes, edges, byId, width, height } = layout(graph);
  const byNode = new Map();
  for (const p of problems) {
    if (p.node_id) (byNode.get(p.node_id) || byNode.set(p.node_id, []).get(p.node_id)).push(p.message);
  }
  const root = svg("svg", {
    class: "graph", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Graph with ${nodes.length} nodes and ${edges.length} edges${byNode.size ? `, ${byNode.size} with problems` : ""}`,
    preserveAspectRatio: "xMidYMin meet",
  });
  // Never drawn larger than life: a three-node graph should not fill a wide screen.
  root.style.maxWidth = `${width}px`;
  root.append(svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0 0 L10 5 L0 10 z", class: "arrow-head" })),
  ));
  if (!nodes.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "graph-empty" }, "No nodes to draw"));
    return root;
  }
  const edgeLayer = svg("g", { class: "edges" });
  for (const edge of edges) {
    const s = byId.get(edge.source);
    const t = byId.get(edge.target);
    const sx = s.x + NODE_W / 2;
    const sy = s.y + NODE_H;
    const tx = t.x + NODE_W / 2;
    const ty = t.y;
    let d;
    if (edge.back || ty <= sy) {
      const bend = Math.max(s.x, t.x) + NODE_W + GAP_X / 2;
      d = `M${s.x + NODE_W} ${s.y + NODE_H / 2} C${bend} ${s.y + NODE_H / 2} ${bend} ${t.y + NODE_H / 2} ${t.x + NODE_W} ${t.y + NODE_H / 2}`;
    } else {
      const mid = (ty - sy) / 2;
      d = `M${sx} ${sy} C${sx} ${sy + mid} ${tx} ${ty - mid} ${tx} ${ty}`;
    }
    const group = svg("g", { class: `edge${edge.back ? " edge-back" : ""}` },
      svg("title", {}, `${edge.source} → ${edge.target}${edge.branch ? ` (${edge.branch})` : ""}`),
      svg("path", { d, "marker-end": "url(#arrow)" }));
    if (edge.branch) {
      const lx = (sx + tx) / 2;
      const ly = (sy + ty) / 2;
      const label = truncate(edge.branch, 14);
      group.append(
        svg("rect", { x: lx - label.length * 3.6 - 6, y: ly - 9, width: label.length * 7.2 + 12, height: 18, rx: 9, class: "branch-bg" }),
        svg("text", { x: lx, y: ly + 4, "text-anchor": "middle", class: "branch-label" }, label),
      );
    }
    edgeLayer.append(group);
  }
  root.append(edgeLayer);
  const nodeLayer = svg("g", { class: "nodes" });
  for (const node of nodes) {
    const messages = byNode.get(node.id) || [];
    const group = svg("g", {
      class: `node type-${node.type.replace(/[^a-z_]/g, "")}${messages.length ? " has-problem" : ""}`,
      transform: `translate(${node.x} ${node.y})`,
      "data-node-id": node.id,
    });
    group.append(
      svg("title", {}, [`${node.id} (${node.type})`, ...messages].join("\n")),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 8, class: "node-box" }),
      svg("rect", { width: 6, height: NODE_H, rx: 3, class: "node-stripe" }),
      svg("text", { x: 16, y: 22, class: "node-id" }, truncate(node.id, 20)),
      svg("text", { x: 16, y: 40, class: "node-type" }, truncate(node.type, 24)),
    );
    if (messages.length) {
      group.append(
        svg("circle", { cx: NODE_W - 12, cy: 12, r: 9, class: "problem-dot" }),
        svg("text", { x: NODE_W - 12, y: 16, "text-anchor": "middle", class: "problem-mark" }, "!"),
        svg("text", { x: 0, y: NODE_H + 16, class: "problem-text" }, truncate(messages[0], 34)),
      );
    }
    nodeLayer.append(group);
  }
  root.append(nodeLayer);
  return root;
}
